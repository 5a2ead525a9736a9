"""The 14 Landslide4Sense bands of any window of the reference grid.

:class:`SceneStack` keeps the inputs open, with one cached warped view of each
source on the grid, and for one window reads every needed band (all bands of a
multi-band file in one read), converts them to L4S units and stacks the bands in
the order asked for. Slope is computed from the DEM on the grid when no slope
raster is given, with a one-pixel halo so the slope at window edges equals the
slope of the whole scene. Slope and DEM are rounded to whole degrees and
metres, as in the L4S training data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from rasterio.enums import Resampling
from rasterio.windows import Window

from landslide_engine.bands import DEM_BAND, SLOPE_BAND, divisor
from landslide_engine.buffers import BufferPool
from landslide_engine.cloudmask import CloudMask, MaskReader
from landslide_engine.errors import InputError, reading
from landslide_engine.grid import Grid
from landslide_engine.plausibility import check_elevations, check_one_band, check_slopes
from landslide_engine.products import ProductMask
from landslide_engine.rasterio_io import OpenRasters
from landslide_engine.scaling import ReflectanceScaling
from landslide_engine.slope import slope_for_grid
from landslide_engine.sources import S2Inputs
from landslide_engine.warp import GridWarp, choose_resampling

# Sentinel-2 products mark missing pixels with DN 0 even when the file declares no nodata.
S2_IMPLICIT_NODATA = 0.0


@dataclass(frozen=True)
class NativeWindow:
    """Source values read for one window of the grid, before conversion to L4S units.

    ``dem_with_halo`` has one extra pixel on each side (for slope); ``slope`` is None unless a slope raster was
    given and the slope band was asked for; ``masked`` marks pixels of the cloud mask's chosen classes. Sentinel-2
    values are float32 with NaN for no data, except the bands in ``stored_nodata``, which are integers as stored.
    """

    window: Window
    bands: tuple[str, ...]
    s2: dict[str, np.ndarray]
    dem_with_halo: np.ndarray | None
    slope: np.ndarray | None
    masked: np.ndarray | None = None
    # bands of ``s2`` holding the source's integers as stored (read_native(stored=True)), with their nodata value
    stored_nodata: dict[str, int | None] = field(default_factory=dict)

    def dem(self) -> np.ndarray:
        """``dem_with_halo``, which is read whenever the elevation band, or a slope from it, is asked for."""
        if self.dem_with_halo is None:
            raise RuntimeError(f"the DEM was not read for bands {', '.join(self.bands)}")
        return self.dem_with_halo


def _nodata_to_nan(stored: np.ndarray, nodata: int | None, out: np.ndarray) -> bool:
    """NaN in ``out`` where ``stored`` holds ``nodata``, as reading the band as float32 would have given; whether
    there was any."""
    if nodata is None:
        return False
    if nodata == np.iinfo(stored.dtype).min and stored.min() > nodata:
        return False  # the usual case (DN 0 in uint16): one reduction shows there is none
    where = stored == nodata
    if not where.any():
        return False
    out[where] = np.nan
    return True


def _mark_invalid(bands: Sequence[np.ndarray], invalid: np.ndarray) -> None:
    """``invalid`` (h, w): whether any of ``bands`` (each h x w) is not finite there (none: all False).

    Band by band into the mask itself, with one band-sized temporary: the answer of ``any(~isfinite)`` over a
    stack without its mask of all bands (14 times the size, fresh pages for every chunk).
    """
    if not bands:
        invalid[...] = False
        return
    np.isfinite(bands[0], out=invalid)  # for now: valid in every band so far
    finite = np.empty(invalid.shape, dtype=bool)
    for band in bands[1:]:
        np.logical_and(invalid, np.isfinite(band, out=finite), out=invalid)
    np.logical_not(invalid, out=invalid)


def _rounded_in_units(values: np.ndarray, band_divisor: float, out: np.ndarray, dtype: type | None = None) -> None:
    """``round(values) / band_divisor`` into ``out``: whole metres or degrees, as in the L4S training data.

    Rounded in ``values``' own type, divided in ``dtype`` (default: the type numpy gives ``values`` divided by a
    Python float) and stored as float32, through one temporary. The DEM is divided in float64 as it always was;
    rounding its float32 values first gives the same whole numbers as rounding them widened.
    """
    np.divide(np.round(values), band_divisor, out=out, dtype=dtype, casting="same_kind")


class SceneStack:
    """Open Sentinel-2, DEM and optional slope rasters, read as L4S bands on ``grid``.

    ``fill_values`` gives the constant (in L4S units) for bands that no input
    provides; the caller decides which bands may be filled. Pixels that
    ``cloud_mask`` puts in one of ``mask_classes`` are no data in every band.
    ``scaling`` may be set after opening (it is read from the scene's own values,
    :meth:`sample_native`), but before :meth:`to_l4s`. Use as a context manager
    so the datasets are closed. ``rasters`` holds the files already opened while the scene was identified and
    its grid built; the stack reads through them and closes them with its own.
    """

    def __init__(
        self,
        s2: S2Inputs,
        dem: str | None,
        grid: Grid,
        scaling: ReflectanceScaling | None,
        slope: str | None = None,
        fill_values: Mapping[str, float] | None = None,
        cloud_mask: ProductMask | MaskReader | None = None,
        mask_classes: Sequence[int] = (),
        rasters: OpenRasters | None = None,
    ) -> None:
        self.grid = grid
        self.scaling = scaling
        self.fill_values = dict(fill_values or {})
        self._cloud_mask, self._mask_classes = cloud_mask, tuple(mask_classes)
        self.mask: MaskReader | None = None
        if isinstance(cloud_mask, MaskReader):  # computed once for the scene (s2cloudless), shared read-only
            self.mask = cloud_mask
        elif cloud_mask is not None and mask_classes:
            self.mask = CloudMask(cloud_mask, grid, mask_classes)
        self._other_grid_warps: dict[tuple[str, float | None, Grid], GridWarp] = {}
        self._s2 = s2
        self._files = rasters if rasters is not None else OpenRasters()
        self._resamplings: dict[str, Resampling] = {}
        self._warps: dict[tuple[str, float | None], GridWarp] = {}
        # the stored Sentinel-2 values of read_native(stored=True), reused once the window read before is dropped
        self._stored_buffers = BufferPool()
        self._dem_path, self._slope_path = dem, slope
        self._dem = self._dataset(dem, "DEM") if dem else None  # None: Sentinel-2 only (reading its scale)
        self._slope = self._dataset(slope, "slope") if slope else None
        self._open_all()

    def _open_all(self) -> None:
        """Open every source and warped view now, in the thread that creates (and will close) the stack.

        rasterio >= 1.4 ties a dataset to the GDAL environment of the thread that opened it: one opened lazily
        by a reader thread and closed by the caller fails with ``EnvError: No GDAL environment exists``.
        Reading from another thread is fine; opening and closing must happen in one.
        """
        for band, source in self._s2.bands.items():
            src = self._dataset(source.path, f"Sentinel-2 band {band}")
            self._warp(source.path, src, self._band_nodata(src, source.index))
        if self._dem is not None:
            self._warp(self._dem.name, self._dem)
        if self._slope is not None:
            self._warp(self._slope.name, self._slope)

    def reopen(self) -> SceneStack:
        """The same stack with dataset handles (and warped views) of its own, for reading in another thread:
        GDAL dataset handles must not be shared between threads."""
        return SceneStack(
            self._s2,
            self._dem_path,
            self.grid,
            self.scaling,
            self._slope_path,
            self.fill_values,
            self._cloud_mask,
            self._mask_classes,
        )

    def __enter__(self) -> SceneStack:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for warp in self._warps.values():
            warp.close()
        self._warps.clear()
        for warp in self._other_grid_warps.values():
            warp.close()
        self._other_grid_warps.clear()
        if self.mask is not None and not isinstance(self._cloud_mask, MaskReader):
            self.mask.close()
        self._files.close()

    def _dataset(self, path: str, what: str):
        return self._files.open(path, what)

    def stack_bands(self, window: Window, bands: Sequence[str]) -> np.ndarray:
        """``bands`` of ``window`` as float32 (C, h, w) in L4S units; NaN where any input has no data."""
        return self.to_l4s(self.read_native(window, bands))

    def read_native(self, window: Window, bands: Sequence[str], stored: bool = False) -> NativeWindow:
        """The source values under ``window`` that ``bands`` need, warped onto the grid but not yet scaled.

        This is the I/O half of :meth:`stack_bands`; :meth:`to_l4s` is the arithmetic half. They are separate
        so a caller can time them, or run the reads in another thread. ``stored=True`` leaves Sentinel-2 bands
        that lie on the grid in their stored integers (``NativeWindow.stored_nodata``), for :meth:`to_l4s` with
        an ``out`` to convert: the same values, one copy fewer.
        """
        for band in bands:
            if band not in (DEM_BAND, SLOPE_BAND) and band not in self._s2.bands and band not in self.fill_values:
                raise InputError(self._s2.describe_missing([band]))
        wanted = [b for b in bands if b in self._s2.bands and b not in (DEM_BAND, SLOPE_BAND)]
        stored_nodata: dict[str, int | None] = {}
        s2 = self._read_s2_bands(wanted, window, stored_nodata if stored else None)
        slope = None
        if SLOPE_BAND in bands and self._slope is not None:
            with reading(self._slope.name, "slope"):
                slope = self._warp(self._slope.name, self._slope).read(1, window)
        needs_dem = DEM_BAND in bands or (SLOPE_BAND in bands and self._slope is None)
        dem = self._dem_with_halo(window) if needs_dem else None
        masked = self.mask.read(window) if self.mask is not None else None
        return NativeWindow(window, tuple(bands), s2, dem, slope, masked, stored_nodata)

    def to_l4s(
        self, native: NativeWindow, out: np.ndarray | None = None, invalid: np.ndarray | None = None
    ) -> np.ndarray:
        """Stack ``native``'s bands as float32 (C, h, w) in L4S units; slope from the DEM when no file gave it.

        ``out`` (float32, that shape) receives the result instead of a new array, e.g. a view into a larger
        array the caller assembles. ``invalid`` (bool, h x w), if given, receives whether any band is not finite
        at each pixel: tested only in the bands that can hold NaN here (stored integers without their nodata value
        in this window, scaled by a finite factor, cannot), so a scene without holes costs two bands' test, not 14.
        """
        window = native.window
        if out is None:
            out = np.empty((len(native.bands), int(window.height), int(window.width)), dtype=np.float32)
        may_hold_nan = [out[i] for i, band in enumerate(native.bands) if self._band_to_l4s(native, band, out[i])]
        masked = native.masked is not None and bool(native.masked.any())
        if masked:
            out[:, native.masked] = np.nan
        if invalid is not None:
            _mark_invalid(may_hold_nan, invalid)
            if masked:
                invalid |= native.masked
        return out

    def _band_to_l4s(self, native: NativeWindow, band: str, out: np.ndarray) -> bool:
        """``band`` of ``native`` in L4S units into ``out`` (h, w); whether it may hold a value that is not finite."""
        if band == DEM_BAND:
            _rounded_in_units(native.dem()[1:-1, 1:-1], divisor(band), out, np.float64)
        elif band == SLOPE_BAND:
            slope = native.slope
            if slope is None:
                window = native.window
                height, width = int(window.height), int(window.width)
                halo = Window(window.col_off - 1, window.row_off - 1, width + 2, height + 2)
                geographic = bool(self.grid.crs.is_geographic)
                transform = self.grid.window_transform(halo)
                # rounded to whole degrees below, so the cheaper gradient length gives the same values
                slope = slope_for_grid(native.dem(), transform, geographic, precise=False, inner=True)
            _rounded_in_units(slope, divisor(band), out)
        elif band in native.s2:
            if self.scaling is None:
                raise RuntimeError("SceneStack.scaling must be set before converting to L4S units")
            self.scaling.to_l4s(native.s2[band], band, out=out)
            if band in native.stored_nodata:
                holes = _nodata_to_nan(native.s2[band], native.stored_nodata[band], out)
                return holes or not self.scaling.keeps_finite(band, native.s2[band].dtype)
        else:
            out[...] = self.fill_values[band]
            return not np.isfinite(self.fill_values[band])
        return True

    def _dem_with_halo(self, window: Window) -> np.ndarray:
        halo = Window(window.col_off - 1, window.row_off - 1, int(window.width) + 2, int(window.height) + 2)
        if self._dem is None or self._dem_path is None:
            raise RuntimeError("this stack was opened without a DEM (Sentinel-2 only)")
        with reading(self._dem_path, "DEM"):
            return self._warp(self._dem.name, self._dem).read(1, halo)  # the slope widens it to float64 itself

    def _read_s2_bands(
        self, bands: Sequence[str], window: Window, stored_nodata: dict[str, int | None] | None = None
    ) -> dict[str, np.ndarray]:
        """Native values of Sentinel-2 ``bands`` on ``window``, one read per source file; given a dict
        ``stored_nodata``, sources on the grid are read as stored and their bands' nodata values noted in it."""
        by_source: dict[tuple[str, float | None], list[str]] = {}
        for band in bands:
            source = self._s2.bands[band]
            src = self._dataset(source.path, f"Sentinel-2 band {band}")
            by_source.setdefault((source.path, self._band_nodata(src, source.index)), []).append(band)
        values: dict[str, np.ndarray] = {}
        for (path, nodata), group in by_source.items():
            indexes = [self._s2.bands[b].index for b in group]
            with reading(path, "Sentinel-2"):
                warp = self._warp(path, self._dataset(path, "Sentinel-2"), nodata)
                data = warp.read_stored(indexes, window, self._stored_buffers) if stored_nodata is not None else None
                if data is not None and stored_nodata is not None:
                    stored_nodata.update(dict.fromkeys(group, warp.stored_nodata))
                else:
                    data = warp.read(indexes, window)
            values.update(zip(group, data, strict=True))
        return values

    def use_mask(self, mask: MaskReader) -> None:
        """Make ``mask``'s pixels no data from now on, in this stack and the ones :meth:`reopen` makes."""
        self._cloud_mask, self.mask = mask, mask

    def reflectance_on(self, grid: Grid, bands: Sequence[str], window: Window) -> dict[str, np.ndarray]:
        """Top-of-atmosphere reflectance (0-1, NaN for no data) of Sentinel-2 ``bands`` on ``window`` of another,
        coarser ``grid``, each source pixel averaged into it: what a cloud detector reads."""
        scaling = self.scaling
        if scaling is None:
            raise RuntimeError("SceneStack.scaling must be set before reading reflectance")
        values = {}
        for band in bands:
            source = self._s2.bands[band]
            src = self._dataset(source.path, f"Sentinel-2 band {band}")
            nodata = src.nodatavals[source.index - 1]
            if nodata is None:
                nodata = self._implicit_nodata(src, source.index)
            key = (source.path, nodata, grid)
            if key not in self._other_grid_warps:
                self._other_grid_warps[key] = GridWarp(src, grid, Resampling.average, nodata)
            native = self._other_grid_warps[key].read(source.index, window).astype(np.float64)
            values[band] = (native - scaling.offset_of(band)) * scaling.to_dn / 10000.0
        return values

    def _warp(self, path: str, src, nodata: float | None = None) -> GridWarp:
        """The cached warped view of ``src`` on the grid (one per file and nodata value)."""
        key = (path, nodata)
        if key not in self._warps:
            self._warps[key] = GridWarp(src, self.grid, self._resampling(path, src), nodata)
        return self._warps[key]

    @classmethod
    def _band_nodata(cls, src, index: int) -> float | None:
        """The nodata value of band ``index`` of ``src``: the declared one, else the implicit one."""
        nodata = src.nodatavals[index - 1]
        return cls._implicit_nodata(src, index) if nodata is None else nodata

    @staticmethod
    def _implicit_nodata(src, index: int) -> float | None:
        """DN 0 for integer S2 bands that declare no nodata (ESA's convention), else None."""
        undeclared = src.nodatavals[index - 1] is None
        return S2_IMPLICIT_NODATA if undeclared and np.issubdtype(np.dtype(src.dtypes[index - 1]), np.integer) else None

    def _resampling(self, path: str, src) -> Resampling:
        if path not in self._resamplings:
            self._resamplings[path] = choose_resampling(src, self.grid)
        return self._resamplings[path]

    def check_terrain(self, size: int = 256, cells: int = 3) -> None:
        """Refuse a DEM or slope raster that is not one band of plausible values on the scene's area
        (:mod:`landslide_engine.plausibility`), read from the same spread windows as :meth:`sample_native`."""
        layers = [(self._dem, self._dem_path, "DEM"), (self._slope, self._slope_path, "slope")]
        for src, path, what in layers:
            if src is None or path is None:
                continue
            check_one_band(src.count, path, what, tuple(src.descriptions))
            values = []
            with reading(path, what):
                for window in _spread_windows(self.grid.width, self.grid.height, size, cells):
                    values.append(self._warp(src.name, src).read(1, window).ravel())
            (check_elevations if what == "DEM" else check_slopes)(np.concatenate(values), path)

    def sample_native(self, bands: Sequence[str], size: int = 256, cells: int = 3) -> dict[str, np.ndarray]:
        """Native values (NaN = nodata) of ``bands`` on the same pixels: ``cells`` x ``cells`` windows spread
        over the grid, ``size`` x ``size`` pixels in all (the whole grid when it is smaller).

        What the reflectance scale is read from (:mod:`landslide_engine.scale_detection`); pixel by pixel, so
        bands can be compared. Small windows read only the source blocks under them, where a decimated read of
        the whole scene would decode every block of it.
        """
        samples: dict[str, list[np.ndarray]] = {band: [] for band in bands}
        for window in _spread_windows(self.grid.width, self.grid.height, size, cells):
            native = self._read_s2_bands(list(bands), window)
            masked = self.mask.read(window) if self.mask is not None else None  # clouds say nothing of the scale
            for band in bands:
                if masked is not None:
                    native[band][masked] = np.nan
                samples[band].append(native[band].ravel())
        return {band: np.concatenate(parts) for band, parts in samples.items()}


def _spread_windows(width: int, height: int, size: int, cells: int) -> list[Window]:
    """``cells`` x ``cells`` windows of ``size // cells`` pixels centred in a regular grid over the raster
    (the whole raster when it is smaller than ``size``)."""
    if width <= size and height <= size:
        return [Window(0, 0, width, height)]
    side = max(1, size // cells)
    w, h = min(side, width), min(side, height)
    cols = [min(max(0, (2 * i + 1) * width // (2 * cells) - w // 2), width - w) for i in range(cells)]
    rows = [min(max(0, (2 * j + 1) * height // (2 * cells) - h // 2), height - h) for j in range(cells)]
    return [Window(col, row, w, h) for row in rows for col in cols]
