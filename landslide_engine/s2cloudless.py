"""Clouds found by s2cloudless, for L1C input that brings no cloud mask of its own (band files, stacks).

s2cloudless (Sentinel Hub, on PyPI) is a LightGBM classifier of single pixels from ten top-of-atmosphere
reflectances: B01 B02 B04 B05 B08 B8A B09 B10 B11 B12. Its model file ships inside the package; the engine reads
it with LightGBM and does not import the package itself, whose downloader needs Sentinel Hub's client and
OpenCV (install it with ``pip install --no-deps s2cloudless lightgbm``).

It runs on a grid six times coarser than the scene's (60 m for the 10 m grid), as its authors advise: a tree
ensemble over every 10 m pixel costs 36 times more for a cloud outline that is no sharper than the 60 m bands
it reads (B01, B09, B10). The bands are averaged onto that grid, the cloud probability is smoothed over a
disk (``average_over``), thresholded at 0.4 and dilated (``dilation_size``), the settings s2cloudless
documents, and each 60 m cell covers its 6 x 6 pixels of the scene grid.
"""

from __future__ import annotations

import importlib.util
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from affine import Affine
from rasterio.windows import Window

from landslide_engine.cloudmask import MaskReader
from landslide_engine.errors import InputError
from landslide_engine.grid import Grid

BANDS: tuple[str, ...] = ("B1", "B2", "B4", "B5", "B8", "B8A", "B9", "B10", "B11", "B12")
LABEL = "clouds (s2cloudless)"
THRESHOLD = 0.4
AVERAGE_OVER = 4  # disk radius (coarse pixels) over which probabilities are averaged
DILATION_SIZE = 2  # disk radius (coarse pixels) by which the cloud mask grows
COARSE_FACTOR = 6
_MODEL_FILE = "pixel_s2_cloud_detector_lightGBM_v0.1.txt"
_BLOCK_ROWS = 256  # coarse rows classified at a time
INSTALL_HINT = "pip install --no-deps s2cloudless lightgbm"

# ``read(bands, window)`` on the coarse grid -> {band: top-of-atmosphere reflectance (0-1), NaN for no data}
ReadReflectance = Callable[[Grid, tuple[str, ...], Window], dict[str, np.ndarray]]


def model_file() -> Path:
    """The LightGBM model shipped in the s2cloudless package (found without importing the package)."""
    spec = importlib.util.find_spec("s2cloudless")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        path = Path(location) / "models" / _MODEL_FILE
        if path.is_file():
            return path
    raise InputError(f"s2cloudless is not installed in this Python: {INSTALL_HINT}")


def coarse_grid(grid: Grid, factor: int = COARSE_FACTOR) -> Grid:
    """``grid`` with pixels ``factor`` times larger, from the same corner (the last ones reach past its edge)."""
    t = grid.transform
    transform = Affine(t.a * factor, 0.0, t.c, 0.0, t.e * factor, t.f)
    return Grid(grid.crs, transform, math.ceil(grid.width / factor), math.ceil(grid.height / factor))


class S2CloudlessMask(MaskReader):
    """The s2cloudless cloud mask of a scene, computed once on the coarse grid and shared by every reader."""

    kind = "s2cloudless"
    path = ""

    def __init__(self, grid: Grid, clouds: np.ndarray, factor: int, seconds: float) -> None:
        self.grid = grid
        self.labels = [LABEL]
        self.clouds = clouds
        self.factor = factor
        self.seconds = seconds

    @property
    def seconds_per_megapixel(self) -> float:
        """Time spent per million pixels of the scene grid."""
        return self.seconds / (self.grid.width * self.grid.height / 1e6)

    def by_class(self, window: Window) -> dict[str, np.ndarray]:
        f = self.factor
        r0, c0 = int(window.row_off), int(window.col_off)
        h, w = int(window.height), int(window.width)
        rows = np.clip(np.arange(r0, r0 + h) // f, 0, self.clouds.shape[0] - 1)
        cols = np.clip(np.arange(c0, c0 + w) // f, 0, self.clouds.shape[1] - 1)
        inside = np.outer(
            (np.arange(r0, r0 + h) >= 0) & (np.arange(r0, r0 + h) < self.grid.height),
            (np.arange(c0, c0 + w) >= 0) & (np.arange(c0, c0 + w) < self.grid.width),
        )
        return {LABEL: self.clouds[np.ix_(rows, cols)] & inside}


def detect_clouds(grid: Grid, read: ReadReflectance, factor: int = COARSE_FACTOR) -> S2CloudlessMask:
    """Run s2cloudless over ``grid`` (on its coarse version) and return the mask; ``read`` supplies the bands."""
    try:
        from lightgbm import Booster
    except ImportError:
        raise InputError(f"s2cloudless needs LightGBM: {INSTALL_HINT}") from None
    started = time.perf_counter()
    booster = Booster(model_file=str(model_file()))
    coarse = coarse_grid(grid, factor)
    probability = np.zeros((coarse.height, coarse.width), dtype=np.float32)
    for r0 in range(0, coarse.height, _BLOCK_ROWS):
        window = Window(0, r0, coarse.width, min(_BLOCK_ROWS, coarse.height - r0))
        bands = read(coarse, BANDS, window)
        features = np.stack([bands[b] for b in BANDS], axis=-1).reshape(-1, len(BANDS))
        valid = np.isfinite(features).all(axis=1)
        block = np.zeros(features.shape[0], dtype=np.float32)
        if valid.any():
            block[valid] = booster.predict(features[valid])
        probability[r0 : r0 + int(window.height)] = block.reshape(int(window.height), coarse.width)
    clouds = _postprocess(probability)
    return S2CloudlessMask(grid, clouds, factor, time.perf_counter() - started)


def _disk(radius: int) -> np.ndarray:
    yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    return (xx * xx + yy * yy <= radius * radius).astype(np.float32)


def _postprocess(probability: np.ndarray) -> np.ndarray:
    """s2cloudless's own steps: probability averaged over a disk, thresholded, the mask dilated by a disk."""
    from scipy import ndimage

    kernel = _disk(AVERAGE_OVER)
    smoothed = ndimage.convolve(probability, kernel / kernel.sum(), mode="reflect")
    return ndimage.binary_dilation(smoothed > THRESHOLD, structure=_disk(DILATION_SIZE) > 0)
