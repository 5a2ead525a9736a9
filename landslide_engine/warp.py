"""Reading any raster band onto a window of the reference grid.

:class:`GridWarp` opens one GDAL warped VRT per source that spans the whole
reference grid (plus a small margin for slope halos) and reads windows from
it. Building a warped VRT costs far more than reading a patch strip from one,
so it is built once per source, not once per window; only the source pixels
under each requested window are decoded, so memory follows the window, not
the scene (GDAL's block cache, capped by ``GDAL_CACHEMAX``, is the only thing
that grows). Windows that stick out of the grid further than the margin get
a warped VRT of their own, which reads the neighbouring source pixels or NaN
where there are none.

Resampling is chosen per source from its pixel size relative to the grid:
coarser sources (20/60 m bands, 30 m DEMs) are interpolated bilinearly so no
blocky 60 m steps appear in a 10 m mosaic; finer sources are averaged, which is
what a coarser sensor pixel physically is; a source on the same pixel size uses
nearest neighbour, which copies aligned pixels exactly.

A source that sits exactly on the grid (same CRS and pixel size, pixel corners
on grid corners, no mask band) is not warped at all: :class:`GridWarp` reads its
pixels straight from the file, which gives the same values as the nearest-neighbour
warp at a fraction of the cost and lets GDAL's block cache hold the decoded
source tiles rather than warped copies of them.

A coarser source in the grid's CRS with no rotation (a 30 m DEM, 20/60 m bands
on a 10 m grid) is interpolated by :class:`GridWarp` itself, with GDAL's own
sample positions and weights (:mod:`landslide_engine.bilinear`); only pixels whose
neighbours are neither plainly data nor plainly nodata take GDAL's value from the
warped VRT, which then warps just the blocks that hold them.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
from rasterio.enums import MaskFlags, Resampling
from rasterio.vrt import WarpedVRT
from rasterio.warp import calculate_default_transform
from rasterio.windows import Window

from landslide_engine.bilinear import (
    EXACT_IN_FLOAT32,
    NODATA_TOLERANCE,
    Rim,
    bilinear_axis,
    separable_bilinear,
)
from landslide_engine.buffers import BufferPool
from landslide_engine.grid import Grid
from landslide_engine.reproject import Cells, SourcePositions, interpolate_window, reprojected_bilinear

_SAME_RESOLUTION = 0.02  # relative difference treated as the same pixel size
_ALIGNED_TOLERANCE_PX = 1e-6  # offset from a whole pixel (and relative pixel-size difference) treated as aligned
GRID_MARGIN = 8  # pixels the cached warped VRT reaches beyond each grid edge


def source_resolution_on_grid(src, grid: Grid) -> float:
    """The source's pixel size expressed in the grid's CRS units (mean of x and y)."""
    if src.crs == grid.crs:
        return (abs(src.transform.a) + abs(src.transform.e)) / 2
    transform, _, _ = calculate_default_transform(src.crs, grid.crs, src.width, src.height, *src.bounds)
    return (abs(transform.a) + abs(transform.e)) / 2


def choose_resampling(src, grid: Grid) -> Resampling:
    """Nearest on the same pixel size, bilinear for coarser sources, average for finer ones."""
    ratio = source_resolution_on_grid(src, grid) / grid.resolution[0]
    if abs(ratio - 1.0) <= _SAME_RESOLUTION:
        return Resampling.nearest
    return Resampling.bilinear if ratio > 1.0 else Resampling.average


def _warped_vrt(src, grid: Grid, window: Window, resampling: Resampling, nodata: float | None) -> WarpedVRT:
    return WarpedVRT(
        src,
        crs=grid.crs,
        transform=grid.window_transform(window),
        width=int(window.width),
        height=int(window.height),
        resampling=resampling,
        src_nodata=nodata,
        nodata=np.nan,
        dtype="float32",
    )


def grid_offset(src, grid: Grid) -> tuple[int, int] | None:
    """(col, row) of the grid's top-left pixel in ``src`` when ``src`` lies exactly on ``grid``, else None.

    Exactly means: same CRS, same pixel size, no rotation, pixel corners on whole grid pixels, validity
    given by nodata values alone (a per-dataset mask or alpha band would need the warper to honour it), and
    a data type that float32 holds exactly.
    """
    a, b, c, d, e, f = list(src.transform)[:6]
    ga, _, gc, _, ge, gf = list(grid.transform)[:6]
    if src.crs != grid.crs or b or d or grid.transform.b or grid.transform.d:
        return None
    if abs(a - ga) > _ALIGNED_TOLERANCE_PX * abs(ga) or abs(e - ge) > _ALIGNED_TOLERANCE_PX * abs(ge):
        return None
    col, row = (gc - c) / a, (gf - f) / e
    if abs(col - round(col)) > _ALIGNED_TOLERANCE_PX or abs(row - round(row)) > _ALIGNED_TOLERANCE_PX:
        return None
    if any(set(flags) - {MaskFlags.all_valid, MaskFlags.nodata} for flags in src.mask_flag_enums):
        return None
    if not set(src.dtypes) <= EXACT_IN_FLOAT32:
        return None
    return round(col), round(row)


def _stored_exactly(src, nodata: float | None) -> bool:
    """Whether ``src``'s values are integers that float32 holds exactly, with an integer nodata value (or none)."""
    types = {np.dtype(t) for t in src.dtypes}
    if len(types) != 1:
        return False
    kind = types.pop()
    if kind.kind not in "iu" or kind.itemsize > 2:
        return False
    if nodata is None or np.isnan(nodata):
        return True
    info = np.iinfo(kind)
    return float(nodata).is_integer() and info.min <= nodata <= info.max


class GridWarp:
    """The bands of one open source on ``grid``, read window by window.

    Sources on the grid itself are read directly (:func:`grid_offset`); coarser ones in the grid's CRS are
    interpolated here (:func:`separable_bilinear`), with GDAL's values where the source has no full 2 x 2
    neighbourhood; all others are read through one cached warped VRT.
    """

    def __init__(
        self,
        src,
        grid: Grid,
        resampling: Resampling,
        src_nodata: float | None = None,
        margin: int = GRID_MARGIN,
    ) -> None:
        self.src = src
        self.grid = grid
        self.resampling = resampling
        self.nodata = src.nodata if src_nodata is None else src_nodata
        self.margin = margin
        self._offset = grid_offset(src, grid) if resampling == Resampling.nearest else None
        self._separable = self._offset is None and separable_bilinear(src, grid, resampling)
        self._stored = self._offset is not None and _stored_exactly(src, self.nodata)
        self._positions: SourcePositions | None = None
        if self._offset is None and not self._separable:
            self._positions = reprojected_bilinear(src, grid, resampling, margin)
        self._vrt: WarpedVRT | None = None
        if self._offset is None:
            extent = Window(-margin, -margin, grid.width + 2 * margin, grid.height + 2 * margin)
            self._vrt = _warped_vrt(src, grid, extent, resampling, self.nodata)

    @property
    def direct(self) -> bool:
        """True when the source lies on the grid and is read without warping."""
        return self._offset is not None

    @property
    def separable(self) -> bool:
        """True when the source's bilinear warp is computed here (:func:`separable_bilinear`), GDAL serving
        only pixels at its edges and next to its nodata."""
        return self._separable

    @property
    def reprojected(self) -> bool:
        """True when the source's bilinear warp from another CRS is computed here (:mod:`landslide_engine.reproject`),
        GDAL serving only pixels next to its edges and its nodata."""
        return self._positions is not None

    def read(self, bands: int | Sequence[int], window: Window) -> np.ndarray:
        """Band(s) ``bands`` (1-based) on ``window`` as float32: (h, w) for one band, (n, h, w) for a list."""
        if self._offset is not None:
            return self._read_direct(bands, window, self._offset)
        indexes = [bands] if isinstance(bands, int) else list(bands)
        if self._separable:
            out = self._read_separable(indexes, window)
        elif self._positions is not None:
            out = self._read_reprojected(indexes, window, self._positions)
        else:
            out = self._read_warped(indexes, window)
        return out[0] if isinstance(bands, int) else out

    @property
    def _cached_vrt(self) -> WarpedVRT:
        """The warped VRT over the grid and its margin, which every source not read directly has."""
        if self._vrt is None:
            raise RuntimeError("a source read directly has no warped VRT")
        return self._vrt

    def _in_margin(self, window: Window) -> bool:
        """Whether ``window`` lies within the cached VRT (the grid and its margin)."""
        col, row = int(window.col_off), int(window.row_off)
        m = self.margin
        return (
            col >= -m
            and row >= -m
            and col + int(window.width) <= self.grid.width + m
            and row + int(window.height) <= self.grid.height + m
        )

    def _read_warped(self, indexes: list[int], window: Window) -> np.ndarray:
        """GDAL's warp of ``indexes`` on ``window``, (n, h, w): from the cached VRT, or from one built for this
        window where it sticks out of the VRT."""
        if self._in_margin(window):
            m = self.margin
            return self._cached_vrt.read(
                indexes,
                window=Window(int(window.col_off) + m, int(window.row_off) + m, int(window.width), int(window.height)),
            )
        with _warped_vrt(self.src, self.grid, window, self.resampling, self.nodata) as vrt:
            return vrt.read(indexes)

    def _read_separable(self, indexes: list[int], window: Window) -> np.ndarray:
        """GDAL's bilinear warp of ``indexes`` on ``window``, (n, h, w), interpolated along x then y in float64
        from the source pixels under the window (one read); pixels without a full valid 2 x 2 neighbourhood
        are GDAL's, or NaN without any data around (:meth:`_mend_blocks`)."""
        col, row = int(window.col_off), int(window.row_off)
        width, height = int(window.width), int(window.height)
        st, vt, m = self.src.transform, self._cached_vrt.transform, self.margin
        left, wx = bilinear_axis(col + m, width, vt.c, vt.a, st.c, st.a)
        top, wy = bilinear_axis(row + m, height, vt.f, vt.e, st.f, st.e)
        in_x = (left >= 0) & (left + 1 < self.src.width)
        in_y = (top >= 0) & (top + 1 < self.src.height)
        if not in_x.any() or not in_y.any():
            return self._read_warped(indexes, window)
        c0, c1 = int(left[in_x].min()), int(left[in_x].max()) + 2
        r0, r1 = int(top[in_y].min()), int(top[in_y].max()) + 2
        data = self.src.read(indexes, window=Window(c0, r0, c1 - c0, r1 - r0), out_dtype="float64")
        # Columns and rows off the source take the nearest pixels read here; GDAL's values replace theirs below.
        lx = np.clip(left, c0, c1 - 2) - c0
        ly = np.clip(top, r0, r1 - 2) - r0

        valid = np.isfinite(data)
        # A pixel that is NaN or exactly nodata in every requested band has nothing for GDAL to weigh (NaN that is
        # not the nodata value is weighed, but gives NaN); one that is nodata in every band is plainly no data.
        nothing = ~valid
        declared = self.nodata is not None
        if declared and not np.isnan(self.nodata):
            valid &= np.abs(data - self.nodata) > NODATA_TOLERANCE * abs(self.nodata)
            plain = data == self.nodata
            nothing |= plain
        else:
            plain = nothing if declared else np.zeros_like(valid)
        # A pixel that is nodata in any requested band is left to GDAL, whose mask also weighs the other bands.
        valid = valid.all(axis=0)
        if len(set(indexes)) < self.src.count:  # GDAL's mask spans bands not read here: nodata is its call
            nothing, plain = np.zeros_like(nothing), np.zeros_like(plain)
        some = ~nothing.all(axis=0)
        clear = valid | plain.all(axis=0)
        # Every 2 x 2 cell of the read pixels is some output pixel's neighbourhood (source pixels are no smaller
        # than the grid's): a cell all valid needs no GDAL; one without any data gives none.
        full = valid[:-1, :-1] & valid[:-1, 1:] & valid[1:, :-1] & valid[1:, 1:]
        empty = ~(some[:-1, :-1] | some[:-1, 1:] | some[1:, :-1] | some[1:, 1:])
        inside = bool(in_x.all() and in_y.all())
        out = np.empty((len(indexes), height, width), dtype=np.float32)
        if inside and empty.all():  # e.g. a window in a granule's no-data wedge
            out.fill(np.nan)
            return out

        wy_top, wy_bottom = wy[:, None], (1.0 - wy)[:, None]
        for band, values in zip(out, data, strict=True):  # one band at a time: float64 temporaries of one band
            along_x = values[:, lx] * wx + values[:, lx + 1] * (1.0 - wx)
            upper = along_x[ly]
            upper *= wy_top
            lower = along_x[ly + 1]
            lower *= wy_bottom
            np.add(upper, lower, out=band)
        if not (inside and full.all()):
            rim = Rim(
                data,
                valid,
                clear,
                full,
                empty,
                (ly, lx),
                (top, left),
                (wy, wx),
                (in_y, in_x),
                (r0, c0),
                (self.src.height, self.src.width),
            )
            self._mend_blocks(out, rim, indexes, window)
        return out

    def _read_reprojected(self, indexes: list[int], window: Window, positions: SourcePositions) -> np.ndarray:
        """The bilinear warp of ``indexes`` on ``window`` from a source in another CRS, (n, h, w): interpolated
        here at source positions from a mesh of exact transforms (:mod:`landslide_engine.reproject`, one read of
        the source pixels under the window), GDAL's values where a pixel's 2 x 2 neighbourhood is not wholly
        data on the source."""
        width, height = int(window.width), int(window.height)
        where = positions.window(int(window.col_off), int(window.row_off), width, height)
        if where is None:
            return self._read_warped(indexes, window)
        # One cell more on each side than the positions need, so rounding at a bound cannot leave the block.
        c0, r0 = int(np.floor(where.low[0])) - 1, int(np.floor(where.low[1])) - 1
        c1, r1 = int(np.floor(where.high[0])) + 3, int(np.floor(where.high[1])) + 3
        read_c0, read_r0 = max(c0, 0), max(r0, 0)
        read_c1, read_r1 = min(c1, self.src.width), min(r1, self.src.height)
        if read_c1 - read_c0 < 2 or read_r1 - read_r0 < 2:
            return self._read_warped(indexes, window)
        # As float32, GDAL's working type for a float32 warp, which rounds int32 and float64 values alike.
        data = self.src.read(
            indexes, window=Window(read_c0, read_r0, read_c1 - read_c0, read_r1 - read_r0), out_dtype="float32"
        )
        block = np.full((len(indexes), r1 - r0, c1 - c0), np.nan)
        block[:, read_r0 - r0 : read_r1 - r0, read_c0 - c0 : read_c1 - c0] = data
        cells = [Cells.of(band, self.nodata, (r0, c0)) for band in block]
        out = np.empty((len(indexes), height, width), dtype=np.float32)
        interpolate_window(where, cells, out)
        gaps = np.isnan(out)
        if gaps.any():
            self._fill_from_gdal(out, gaps, indexes, window)
        return out

    def _fill_from_gdal(self, out: np.ndarray, gaps: np.ndarray, indexes: list[int], window: Window) -> None:
        """GDAL's warp of ``indexes`` into ``out`` (n, h, w) where ``gaps``: read over the rows and columns that
        hold a gap only (a void in the DEM, the source's edge), not the whole window, where the cached VRT covers
        it (its values depend on its own blocks, not on the window read)."""
        if not self._in_margin(window):
            np.copyto(out, self._read_warped(indexes, window), where=gaps)
            return
        rows = np.flatnonzero(gaps.any(axis=(0, 2)))
        cols = np.flatnonzero(gaps.any(axis=(0, 1)))
        r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        part = Window(int(window.col_off) + c0, int(window.row_off) + r0, c1 - c0, r1 - r0)
        np.copyto(out[:, r0:r1, c0:c1], self._read_warped(indexes, part), where=gaps[:, r0:r1, c0:c1])

    def _mend_blocks(self, out: np.ndarray, rim: Rim, indexes: list[int], window: Window) -> None:
        """Where ``out`` has no full valid 2 x 2 neighbourhood: NaN without any data around, GDAL's weighing of
        the valid neighbours (:meth:`Rim.renormalised`) where each is clearly data or nodata, GDAL's warp itself
        elsewhere (the source's edges, values within a hair of nodata, nodata in only some bands).

        Work goes block by block of the cached VRT (GDAL warps whole blocks), and per pixel only in blocks on the
        rim of the source or of its no-data: a block inside a no-data wedge becomes NaN at once, one with full
        neighbourhoods is left as it is.
        """
        (ly, lx), (in_y, in_x) = rim.cells, rim.inside
        height, width = out.shape[1:]
        if not self._in_margin(window):
            bad = ~(rim.full[ly][:, lx] & in_y[:, None] & in_x[None, :])
            np.copyto(out, self._read_warped(indexes, window), where=bad)
            return
        col, row = int(window.col_off) + self.margin, int(window.row_off) + self.margin
        block_h, block_w = self._cached_vrt.block_shapes[0]
        row_cuts = [0, *range(-row % block_h or block_h, height, block_h), height]
        col_cuts = [0, *range(-col % block_w or block_w, width, block_w), width]
        for r0, r1 in itertools.pairwise(row_cuts):
            sy = ly[r0:r1]
            rows_in = bool(in_y[r0:r1].all())
            for c0, c1 in itertools.pairwise(col_cuts):
                sx = lx[c0:c1]
                cells_y, cells_x = slice(int(sy[0]), int(sy[-1]) + 1), slice(int(sx[0]), int(sx[-1]) + 1)
                whole = rows_in and bool(in_x[c0:c1].all())
                if whole and rim.full[cells_y, cells_x].all():
                    continue
                block = out[:, r0:r1, c0:c1]
                if whole and rim.empty[cells_y, cells_x].all():
                    block[...] = np.nan
                    continue
                inb = in_y[r0:r1, None] & in_x[None, c0:c1]
                none = rim.empty[sy][:, sx] & inb
                block[:, none] = np.nan
                rr, cc = np.nonzero(~(rim.full[sy][:, sx] & inb) & ~none)
                known, values = rim.mend(r0 + rr, c0 + cc)
                block[:, rr[known], cc[known]] = values
                rr, cc = rr[~known], cc[~known]
                if rr.size:
                    gdal = self._cached_vrt.read(indexes, window=Window(col + c0, row + r0, c1 - c0, r1 - r0))
                    block[:, rr, cc] = gdal[:, rr, cc]

    def read_stored(self, bands: Sequence[int], window: Window, pool: BufferPool | None = None) -> np.ndarray | None:
        """Bands ``bands`` on ``window`` as stored, (n, h, w) in the source's own integer type, where that is
        exactly what :meth:`read` gives once converted to float32 with :attr:`stored_nodata` made NaN; None
        where it is not (a source that is warped, not integer, or a window reaching beyond the source).

        The scene reader scales these values straight into the model's input: GDAL's conversion to float32,
        a copy twice the size, and the pass that turns nodata into NaN are saved. With ``pool`` GDAL reads into
        an array from it (no fresh pages to fault in for every window).
        """
        if not self._stored or self._offset is None:
            return None
        col, row = int(window.col_off) + self._offset[0], int(window.row_off) + self._offset[1]
        width, height = int(window.width), int(window.height)
        if col < 0 or row < 0 or col + width > self.src.width or row + height > self.src.height:
            return None
        part = Window(col, row, width, height)
        if pool is None:
            return self.src.read(list(bands), window=part)
        out = pool.take((len(bands), height, width), self.src.dtypes[bands[0] - 1])
        return self.src.read(list(bands), window=part, out=out)

    @property
    def stored_nodata(self) -> int | None:
        """The nodata value of :meth:`read_stored`'s values (None: every value is data)."""
        return None if self.nodata is None or np.isnan(self.nodata) else int(self.nodata)

    def _read_direct(self, bands: int | Sequence[int], window: Window, offset: tuple[int, int]) -> np.ndarray:
        """What the nearest-neighbour warp gives on an aligned source: its pixels as float32, NaN for nodata
        and outside the source."""
        indexes = [bands] if isinstance(bands, int) else list(bands)
        width, height = int(window.width), int(window.height)
        col = int(window.col_off) + offset[0]
        row = int(window.row_off) + offset[1]
        c0, r0 = max(col, 0), max(row, 0)
        c1, r1 = min(col + width, self.src.width), min(row + height, self.src.height)
        if c0 == col and r0 == row and c1 == col + width and r1 == row + height:
            out = self.src.read(indexes, window=Window(col, row, width, height), out_dtype="float32")
        else:
            out = np.full((len(indexes), height, width), np.nan, dtype=np.float32)
            if c0 < c1 and r0 < r1:
                out[:, r0 - row : r1 - row, c0 - col : c1 - col] = self.src.read(
                    indexes, window=Window(c0, r0, c1 - c0, r1 - r0), out_dtype="float32"
                )
        if self.nodata is not None and not np.isnan(self.nodata):
            out[out == np.float32(self.nodata)] = np.nan
        return out[0] if isinstance(bands, int) else out

    def close(self) -> None:
        if self._vrt is not None:
            self._vrt.close()
