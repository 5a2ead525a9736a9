"""GDAL's bilinear warp of a source in another CRS (a geographic DEM onto a UTM grid), computed with numpy.

GDAL warps such a source through a warped VRT with its general kernel, one output pixel at a time with four
weights and a validity test each (the source has a nodata value), after finding every pixel's source position
with its approximate transformer. That was the dearest part of reading a chunk of a scene whose DEM is in
EPSG:4326, as analysts download SRTM or GLO-30 tiles.

Here the source position of each output pixel is interpolated bilinearly between exact transforms of grid
pixel centres on a coarse mesh (:class:`SourcePositions`): every :data:`MESH_STEP` grid pixels, on whole
multiples of the step, so a pixel's position depends on where it lies on the grid and not on the window that
reads it. A map projection is smooth on that scale: the interpolated positions stay within 1.5e-4 source
pixels of exact ones on the bench's DEM and the real SRTM and GLO-30 rasters (measured in the tests), far
below the 0.125 source pixels GDAL's approximate transformer allows (a mapping that is not smooth, across the
antimeridian, is left to GDAL: :func:`reprojected_bilinear`). Values then follow GDAL's 4-sample bilinear
kernel (:class:`Cells`, :func:`interpolate_window`) in float64. They are not GDAL's bits: GDAL's own positions
are off by up to its approximation threshold, and so its elevations by up to the terrain's slope times that
distance; these values are closer to those of an exact transformer than GDAL's default ones are.

Only output pixels whose 2 x 2 source neighbourhood lies on the source and holds data in every pixel are
valued here; the others (next to nodata or NaN, at the source's edges) take GDAL's value from the warped VRT.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from affine import Affine
from rasterio.enums import MaskFlags, Resampling
from rasterio.warp import transform as transform_points

from landslide_engine.bilinear import NODATA_TOLERANCE
from landslide_engine.grid import Grid

# Grid pixels between exactly transformed mesh points: positions in between are interpolated bilinearly.
MESH_STEP = 32
# The largest distance (source pixels) between a position interpolated on the mesh and the exact one, tested at
# the centre of each mesh cell: far below GDAL's own approximation (0.125) and far above real projections' (1e-4).
MAX_MESH_ERROR_PX = 0.01
# Window rows interpolated together: a few hundred kB per temporary, which stay in the CPU's cache.
ROWS_AT_ONCE = 8
# The largest source-pixel step per grid pixel (summed over both grid axes) for GDAL's 4-sample kernel: where a
# source pixel covers less than a grid pixel GDAL widens its kernel, which this module does not reproduce.
_MAX_SOURCE_STEP = 0.9


def _apply(transform: Affine, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``transform`` applied to arrays of points (affine's own ``*`` on arrays is deprecated in newer releases)."""
    a, b, c, d, e, f = transform[:6]
    return a * x + b * y + c, d * x + e * y + f


def _mesh_nodes(first: int, count: int, step: int) -> np.ndarray:
    """Grid indices of the mesh along one axis covering pixels ``first`` to ``first + count - 1``: whole
    multiples of ``step``, from the one at or before the first pixel to the one at or after the last."""
    start = (first // step) * step
    stop = -((-(first + count - 1)) // step) * step
    return np.arange(start, stop + 1, step) if stop > start else np.array([start, start + step])


class SourcePositions:
    """Maps grid pixels to continuous source pixel coordinates (pixel ``i`` spans ``i`` to ``i + 1``) of a source
    with geotransform ``transform`` in CRS ``crs``, through exact transforms on a mesh of every ``step`` grid
    pixels over the grid and ``margin`` pixels around it, transformed once."""

    def __init__(self, grid: Grid, crs: object, transform: Affine, margin: int, step: int = MESH_STEP) -> None:
        self.grid, self.crs, self.transform, self.step = grid, crs, transform, step
        self.rows = _mesh_nodes(-margin, grid.height + 2 * margin, step)
        self.cols = _mesh_nodes(-margin, grid.width + 2 * margin, step)
        self._mesh: tuple[np.ndarray, np.ndarray] | None = None

    def exact(self, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Source (x, y) of the centres of grid pixels (``rows``, ``cols``), each transformed exactly (PROJ)."""
        cols_f, rows_f = np.asarray(cols, dtype=np.float64) + 0.5, np.asarray(rows, dtype=np.float64) + 0.5
        gx, gy = _apply(self.grid.transform, cols_f, rows_f)
        xs, ys = transform_points(self.grid.crs, self.crs, np.ravel(gx).tolist(), np.ravel(gy).tolist())
        sx, sy = _apply(~self.transform, np.asarray(xs), np.asarray(ys))
        return np.reshape(sx, np.shape(gx)), np.reshape(sy, np.shape(gy))

    @property
    def mesh(self) -> tuple[np.ndarray, np.ndarray]:
        """Source (x, y) minus 0.5 at every mesh node (GDAL's neighbours are floor(s - 0.5) and the next one)."""
        if self._mesh is None:
            x, y = self.exact(*np.meshgrid(self.rows, self.cols, indexing="ij"))
            self._mesh = (x - 0.5, y - 0.5)
        return self._mesh

    def window(self, col: int, row: int, width: int, height: int) -> WindowPositions | None:
        """The positions of the grid pixels of a window, ready to be interpolated row block by row block; None for
        a window beyond the mesh."""
        step, rows, cols = self.step, self.rows, self.cols
        if row < rows[0] or col < cols[0] or row + height - 1 > rows[-1] or col + width - 1 > cols[-1]:
            return None
        first_row = (row - int(rows[0])) // step
        first_col = (col - int(cols[0])) // step
        node_rows = _mesh_nodes(row, height, step)
        node_cols = _mesh_nodes(col, width, step)
        block = (slice(first_row, first_row + len(node_rows)), slice(first_col, first_col + len(node_cols)))
        mesh_x, mesh_y = self.mesh[0][block], self.mesh[1][block]
        grid_cols = np.arange(col, col + width)
        cell_c = np.minimum((grid_cols - node_cols[0]) // step, len(node_cols) - 2)
        tc = (grid_cols - node_cols[cell_c]) / step
        grid_rows = np.arange(row, row + height)
        cell_r = np.minimum((grid_rows - node_rows[0]) // step, len(node_rows) - 2)
        along = []
        for mesh in (mesh_x, mesh_y):
            at_nodes = mesh[:, cell_c] * (1.0 - tc) + mesh[:, cell_c + 1] * tc  # each mesh row, every column
            along.append((at_nodes[:-1], np.diff(at_nodes, axis=0)))
        low = (float(mesh_x.min()), float(mesh_y.min()))
        high = (float(mesh_x.max()), float(mesh_y.max()))
        return WindowPositions(along[0], along[1], cell_r, (grid_rows - node_rows[cell_r]) / step, low, high)


@dataclass(frozen=True)
class WindowPositions:
    """Source positions of a window's pixels, shifted by -0.5 (so their floor is the left or top neighbour), as
    the mesh rows interpolated to every column (``x`` and ``y``: each (start, difference to the next), (mesh rows
    - 1, width)), with each window row's mesh row and its fraction of the way to the next; ``low`` and ``high``
    bound every position (x, y)."""

    x: tuple[np.ndarray, np.ndarray]
    y: tuple[np.ndarray, np.ndarray]
    mesh_row: np.ndarray
    fraction: np.ndarray
    low: tuple[float, float]
    high: tuple[float, float]

    def rows(self, start: int, stop: int, x: np.ndarray, y: np.ndarray) -> None:
        """Shifted source positions of window rows ``start`` to ``stop`` into ``x`` and ``y`` (float64, (rows,
        width))."""
        k, t = self.mesh_row[start:stop], self.fraction[start:stop, None]
        same = k[0] == k[-1]  # rows between the same two mesh rows (most blocks): no rows to gather
        for (first, step), values in zip((self.x, self.y), (x, y), strict=True):
            np.multiply(t, step[k[0]] if same else np.take(step, k, axis=0), out=values)
            values += first[k[0]] if same else np.take(first, k, axis=0)


@dataclass(frozen=True)
class Cells:
    """Every 2 x 2 cell of a block of source pixels as the coefficients ``a``, ``b``, ``c``, ``d`` of its bilinear
    ``a + b fx + c fy + d fx fy`` (``fx``, ``fy`` the fractions past the top-left pixel), each a flat float64
    array; NaN where the cell is not wholly data. Cell ``i`` has its top-left pixel at source (``origin[0]`` +
    ``i // width``, ``origin[1]`` + ``i % width``)."""

    coefficients: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
    origin: tuple[int, int]
    width: int

    @classmethod
    def of(cls, pixels: np.ndarray, nodata: float | None, origin: tuple[int, int]) -> Cells:
        """The cells of source pixels ``pixels`` (one band, float64, from source pixel ``origin``, NaN off the
        source), which become NaN where they are nodata (within GDAL's tolerance) so that NaN spreads to every
        cell they belong to."""
        if nodata is not None and not np.isnan(nodata):
            nodata_like = ~(np.abs(pixels - nodata) > NODATA_TOLERANCE * abs(nodata))  # NaN compares False
            pixels = np.where(nodata_like, np.nan, pixels)
        v00, v01, v10, v11 = pixels[:-1, :-1], pixels[:-1, 1:], pixels[1:, :-1], pixels[1:, 1:]
        b = v01 - v00
        c = v10 - v00
        d = v11 - v10
        d -= b
        return cls((v00.ravel(), b.ravel(), c.ravel(), d.ravel()), origin, pixels.shape[1] - 1)

    def interpolate(self, index: np.ndarray, fx: np.ndarray, fy: np.ndarray, out: np.ndarray, work: np.ndarray) -> None:
        """GDAL's 4-sample bilinear in the cells at ``index`` with fractions ``fx``, ``fy`` into ``out`` (float32):
        NaN where the 2 x 2 neighbourhood is not wholly data. ``work`` is scratch space, (4, *index.shape)
        float64."""
        a, b, c, d = work
        for coefficient, gathered in zip(self.coefficients, work, strict=True):
            np.take(coefficient, index, out=gathered, mode="clip")
        d *= fx
        d += c
        d *= fy
        b *= fx
        d += b
        d += a
        np.copyto(out, d)


def interpolate_window(where: WindowPositions, cells: list[Cells], out: np.ndarray) -> None:
    """GDAL's 4-sample bilinear of each band's ``cells`` at a window's positions ``where`` into ``out`` (float32,
    (bands, rows, width)), :data:`ROWS_AT_ONCE` rows at a time through buffers made once per window: positions,
    cells and fractions are shared by the bands, and temporaries that small stay in the CPU's cache without
    fresh pages for each step (a new array of that size is a new memory mapping, whose first touch faults)."""
    height, width = out.shape[1:]
    shape = (min(ROWS_AT_ONCE, height), width)
    x, y, left, top = np.empty((4, *shape))
    index = np.empty(shape, dtype=np.intp)
    work = np.empty((4, *shape))
    (r0, c0), cells_per_row = cells[0].origin, cells[0].width
    for start in range(0, height, ROWS_AT_ONCE):
        rows = min(ROWS_AT_ONCE, height - start)
        bx, by, bl, bt, bi, bw = x[:rows], y[:rows], left[:rows], top[:rows], index[:rows], work[:, :rows]
        where.rows(start, start + rows, bx, by)
        np.floor(bx, out=bl)
        np.floor(by, out=bt)
        bx -= bl
        by -= bt
        # The cell's flat index, in float64 (exact for integers this small) and then converted once.
        bt *= cells_per_row
        bt += bl
        bt -= r0 * cells_per_row + c0
        np.copyto(bi, bt, casting="unsafe")
        for band, band_cells in zip(out, cells, strict=True):
            band_cells.interpolate(bi, bx, by, band[start : start + rows], bw)


def reprojected_bilinear(src, grid: Grid, resampling: Resampling, margin: int) -> SourcePositions | None:
    """The positions of ``src``'s pixels on ``grid`` and its ``margin`` when GDAL's bilinear warp of ``src`` may be
    computed here (:func:`interpolate_window`), else None.

    That needs a source in another CRS (one in the grid's CRS is left to
    :func:`~landslide_engine.bilinear.separable_bilinear` or to GDAL, whose values those give exactly), validity
    given by nodata values alone, source pixels larger than the grid's everywhere on the grid (there GDAL uses its
    4-sample kernel; smaller ones make it widen the kernel), and a mapping smooth enough for the mesh: at the
    centre of every mesh cell the interpolated position within :data:`MAX_MESH_ERROR_PX` of the exact one, which
    a grid across the antimeridian or a pole does not give.
    """
    if resampling != Resampling.bilinear or src.crs == grid.crs:
        return None
    if any(set(flags) - {MaskFlags.all_valid, MaskFlags.nodata} for flags in src.mask_flag_enums):
        return None
    positions = SourcePositions(grid, src.crs, src.transform, margin)
    rows, cols = np.meshgrid(positions.rows, positions.cols, indexing="ij")
    try:
        x, y = positions.mesh
        x_right, y_right = positions.exact(rows, cols + 1)
        x_below, y_below = positions.exact(rows + 1, cols)
        half = positions.step // 2
        x_centre, y_centre = positions.exact(rows[:-1, :-1] + half, cols[:-1, :-1] + half)
    except Exception:  # part of the grid outside the source CRS's domain: GDAL's warp decides
        return None
    # How far the source position moves per grid column plus per grid row, along each source axis.
    steps_x = np.abs(x_right - 0.5 - x) + np.abs(x_below - 0.5 - x)
    steps_y = np.abs(y_right - 0.5 - y) + np.abs(y_below - 0.5 - y)
    if not all(np.isfinite(s).all() and s.max() <= _MAX_SOURCE_STEP for s in (steps_x, steps_y)):
        return None
    for mesh, centre in ((x, x_centre), (y, y_centre)):
        interpolated = (mesh[:-1, :-1] + mesh[:-1, 1:] + mesh[1:, :-1] + mesh[1:, 1:]) / 4 + 0.5
        if not np.abs(interpolated - centre).max() <= MAX_MESH_ERROR_PX:  # NaN compares False too
            return None
    return positions
