"""The one translation from what an analyst chose in QGIS to what the engine runs.

The Processing algorithms and the dock collect the same choices with different widgets.
Both hand them over as :class:`SceneChoices` (the inputs, shared by detect and stack) and
:class:`RunChoices` (the model run), and this module alone turns them into the engine's
``PredictRequest``, ``BatchRequest`` (detect_region) or ``stack_to_file`` arguments. A choice left as ``None`` takes the
engine's own default, so no front end carries a copy of a default value.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from landslide_engine.errors import InputError
from landslide_engine.options import SCL_CLASSES

# The cloud mask classes as both front ends list them ("3 cloud shadows", ...), by SCL code, in the engine's order
MASK_CLASS_LABELS: dict[int, str] = {code: f"{code} {name}" for code, name in SCL_CLASSES.items()}
MASK_CLASSES_HELP = (
    "Scene classification (SCL) classes that are made no data, never landslide. L1C cloud masks: any cloud "
    "class selects opaque clouds, thin cirrus selects cirrus, snow selects snow. Select none to mask nothing."
)
S2CLOUDLESS_HELP = (
    "For L1C input without a cloud mask of its own (band files, stacks): clouds found by s2cloudless become "
    "no data. Needs B01 B02 B04 B05 B08 B8A B09 B10 B11 B12, and the s2cloudless and lightgbm packages."
)
DEM_TILES_HELP = (
    "Further tiles of the DEM (Copernicus GLO-30, AW3D30, SRTM) in the DEM's CRS: they are mosaicked with it "
    "on the fly, each tile with its own nodata and georeferencing."
)

# The engine's messages name an option the analyst should change by the command line's flag ("set the reflectance
# scale (--reflectance-scale) to auto"). In QGIS the same option is a Toolbox parameter (the dock's fields say the
# same words), so QGIS names it so; a flag with no QGIS parameter is left as it is.
QGIS_PARAMETER_OF_FLAG: dict[str, str] = {
    "--reflectance-scale": "REFLECTANCE_SCALE",
    "--baseline-offset": "BASELINE_OFFSET",
    "--dem": "DEM",
    "--slope": "SLOPE",
    "--model": "MODEL_FILE",
    "--device": "DEVICE",
}
_FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def qgis_wording(message: str) -> str:
    """An engine message as QGIS says it: each command-line flag that a QGIS parameter sets named by that
    parameter ("set the reflectance scale (REFLECTANCE_SCALE) to auto")."""
    return _FLAG.sub(lambda flag: QGIS_PARAMETER_OF_FLAG.get(flag.group(0), flag.group(0)), message)


@dataclass(frozen=True)
class SceneChoices:
    """Which rasters make the scene, and how to read them (the inputs of detect and stack).

    For a region (:func:`batch_request`) ``s2`` lists the scenes, one file each, and ``dem`` the region's DEM
    or its tiles. ``product`` is a Sentinel-2 product (a SAFE folder, zip or MTD file, a STAC item) read
    with, or instead of, the layers of ``s2``.
    """

    s2: list[str]
    dem: str | list[str]
    slope: str | None = None
    band_map: str = ""  # "B2=1, B8=nir.tif": parsed here, validated by the engine
    reflectance_scale: str | None = None
    baseline_offset: str | None = None  # one of options.BASELINE_OFFSETS; None: the engine's default
    extent: tuple[float, float, float, float] | None = None
    extent_crs: str | None = None
    product: str | None = None
    mask_classes: list[int] | None = None  # SCL codes made no data; None: the engine's default
    s2cloudless: bool = False  # find clouds with s2cloudless (L1C without a cloud mask)

    @property
    def sentinel2(self) -> list[str]:
        """The engine's Sentinel-2 inputs: the product, then the layers."""
        return [*([self.product] if self.product else []), *self.s2]

    @property
    def files(self) -> list[str]:
        """Every input file (product, Sentinel-2, each DEM tile, slope): what no output may overwrite."""
        dems = [self.dem] if isinstance(self.dem, str) else list(self.dem)
        return [*self.sentinel2, *dems, *([self.slope] if self.slope else [])]


@dataclass(frozen=True)
class RunChoices:
    """How to run the model over the scene."""

    model: str | None = None
    device: str | None = None
    precision: str | None = None
    batch_size: int | None = None
    overlap: int | None = None
    threshold: float | None = None  # None: the model's own threshold
    tta: bool = False
    min_area_m2: float | None = None


def request_defaults() -> dict[str, Any]:
    """The engine's defaults for each ``PredictRequest`` field; empty when the engine cannot be imported.

    QGIS shows them as parameter and widget defaults. When the engine's dependencies are missing the
    Toolbox still lists the algorithms (with empty defaults), and a run says what to install.
    """
    try:
        from landslide_engine.pipeline import PredictRequest
    except ImportError:
        return {}
    return {
        field.name: field.default
        for field in dataclasses.fields(PredictRequest)
        if field.default is not dataclasses.MISSING
    }


def predict_request(scene: SceneChoices, run: RunChoices, out_dir: str):
    """The engine's ``PredictRequest`` for these choices, writing into ``out_dir``."""
    from landslide_engine.pipeline import PredictRequest

    _require_inputs(scene)
    return PredictRequest(
        s2=scene.sentinel2, dem=scene.dem, out_dir=out_dir, slope=scene.slope, **_mapping_options(scene, run)
    )


def batch_request(scene: SceneChoices, run: RunChoices, out_dir: str):
    """The engine's ``BatchRequest`` (local executor) mapping each file of ``scene.s2`` as a scene into ``out_dir``."""
    from landslide_engine.batch import BatchRequest

    _require_inputs(scene)
    dems = [scene.dem] if isinstance(scene.dem, str) else list(scene.dem)
    return BatchRequest(
        scenes=list(scene.s2), dems=dems, out_dir=out_dir, slope=scene.slope, options=_mapping_options(scene, run)
    )


def _mapping_options(scene: SceneChoices, run: RunChoices) -> dict[str, Any]:
    """The ``PredictRequest`` fields other than the scene's files; a choice left as None is left out."""
    chosen = {
        "model": run.model,
        "device": run.device,
        "precision": run.precision,
        "batch_size": run.batch_size,
        "overlap": run.overlap,
        "threshold": run.threshold,
        "extent": scene.extent,
        "extent_crs": scene.extent_crs,
        "band_map": parse_band_map(scene.band_map),
        "reflectance_scale": scene.reflectance_scale,
        "baseline_offset": scene.baseline_offset,
        "min_area_m2": run.min_area_m2,
        "mask_classes": scene.mask_classes,
    }
    return {
        "tta": run.tta,
        "s2cloudless": scene.s2cloudless,
        **{name: value for name, value in chosen.items() if value is not None},
    }


def stack_arguments(scene: SceneChoices, model: str | None = None) -> dict[str, Any]:
    """Keyword arguments of the engine's ``stack_to_file`` for these choices (all but the output path).

    With a ``model`` package, the bands the input lacks are filled with that model's constants, as
    ``predict_scene`` fills them, so the stack accepts every scene detection accepts.
    """
    _require_inputs(scene)
    chosen = {
        "fill_values": _fill_values(model) if model else None,
        "slope": scene.slope,
        "band_map": parse_band_map(scene.band_map),
        "reflectance_scale": scene.reflectance_scale,
        "baseline_offset": scene.baseline_offset,
        "extent": scene.extent,
        "extent_crs": scene.extent_crs,
        "mask_classes": scene.mask_classes,
        "s2cloudless": scene.s2cloudless or None,
    }
    return {"s2": scene.sentinel2, "dem": scene.dem, **{k: v for k, v in chosen.items() if v is not None}}


def product_label(path: str) -> str:
    """A short name for a product: ``S2B_MSIL2A_..._T21JUK_...`` for its zip, SAFE folder, MTD file or STAC item."""
    p = PurePosixPath(str(path).replace("\\", "/").rstrip("/"))
    if p.name.upper().startswith("MTD_MSIL"):
        p = p.parent
    name = p.name
    for suffix in (".zip", ".SAFE", ".json"):
        name = name.removesuffix(suffix)
    return name or str(path)


def product_summary(path: str) -> str:
    """One line about the product at ``path`` as its metadata states it: name, level, baseline, sensing date and
    the cloud mask it carries (without one, clouds are masked only by the s2cloudless option).

    Raises the engine's InputError (one line) when it is not a usable Sentinel-2 product.
    """
    from landslide_engine.sources import open_product_input

    product = open_product_input(path)
    mask = f"cloud mask {product.mask.kind}" if product.mask else "no cloud mask of its own"
    return f"{product_label(path)}: {product.describe()}; {mask}"


def dem_input(dem: str, tiles: Sequence[str] = ()) -> str | list[str]:
    """The engine's DEM: the one file, or it and further tiles (each once, the DEM first) to mosaic on the fly."""
    files = list(dict.fromkeys([dem, *tiles]))
    return files if len(files) > 1 else dem


def parse_band_map(text: str | None) -> dict[str, str] | None:
    """``"B2=1, B8=nir.tif"`` -> ``{"B2": "1", "B8": "nir.tif"}``; the engine validates band names and sources."""
    if not text or not text.strip():
        return None
    pairs = {}
    for item in text.replace(";", ",").split(","):
        if not item.strip():
            continue
        band, sep, source = item.partition("=")
        if not sep or not band.strip() or not source.strip():
            raise InputError(f"band map: {item.strip()!r} is not BAND=SOURCE (e.g. B4=3)")
        pairs[band.strip()] = source.strip()
    return pairs


def _fill_values(model: str) -> dict[str, float]:
    from landslide_engine.models.package import load_package

    return dict(load_package(model).metadata.fillable_bands)


def _require_inputs(scene: SceneChoices) -> None:
    if not scene.sentinel2:
        raise InputError("Sentinel-2: choose a Sentinel-2 product or at least one Sentinel-2 raster layer")
    if not scene.dem:
        raise InputError("DEM: choose a DEM raster layer")
