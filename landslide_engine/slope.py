"""Slope in degrees from a DEM, with Horn's (1981) 3x3 finite differences.

Landslide4Sense band B13 is slope in degrees derived from the ALOS PALSAR DEM.
Analysts often have only the DEM, so the engine derives slope itself. Horn's
method is what GDAL, QGIS and ArcGIS use, so our slope matches theirs.

DEMs in geographic coordinates (degrees) are common (SRTM, Copernicus GLO-30).
There the pixel size in metres differs between x and y and shrinks with latitude,
so the step sizes are computed per row on the WGS84 ellipsoid instead of using a
single scale factor, which would be wrong by tens of percent away from the equator.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from landslide_engine.errors import Cancelled, InputError, reading
from landslide_engine.geodesy import metres_per_degree
from landslide_engine.notices import Warn

# Output rows per block of the interior: its float64 temporaries (a few times 16 x width) stay in the CPU's
# cache between the dozen passes over them, instead of going to memory and back for each pass.
_BLOCK_ROWS = 16
# What np.degrees multiplies by (numpy's rad2deg is x * (180.0 / NPY_PI)): the same bits, tested
_DEGREES_PER_RADIAN = 180.0 / math.pi


def horn_slope(
    dem: np.ndarray,
    xres: float | np.ndarray,
    yres: float | np.ndarray,
    nodata_mask: np.ndarray | None = None,
    precise: bool = True,
    inner: bool = False,
) -> np.ndarray:
    """Slope in degrees of ``dem`` (2-D, metres) with pixel sizes in metres.

    ``xres``/``yres`` may be scalars or per-row column vectors (geographic DEMs). ``precise=False`` takes the
    gradient's length as ``sqrt(dx² + dy²)`` instead of ``hypot`` in the interior, five times cheaper and
    within a few float64 ulps of it: for a caller that rounds the slope to whole degrees (the model's input),
    where the two differ only for a slope within about 1e-12 degrees of a half degree.
    Neighbours outside the raster or on nodata take the centre value; nodata
    pixels themselves are NaN. ``inner=True`` returns only the slope of ``dem[1:-1, 1:-1]`` (the same values):
    for a caller whose DEM has a one-pixel halo, the outer ring is not computed at all.

    The scene pipeline calls this thousands of times per scene, so the common case is
    fast: a pixel whose eight neighbours are all inside the raster and valid uses them
    as they are, so the interior is computed from shifted slices (``_horn_interior``).
    Only the outer ring and the pixels next to nodata need the fill rule, which
    ``_horn_at`` applies to just those pixels. Both evaluate the same float64
    expression in the same order, so the result is bit-identical to applying the
    fill rule to every pixel.
    """
    z = np.asarray(dem)
    if z.dtype != np.float32:  # float32 (a warped DEM) is widened block by block in _horn_interior: same values
        z = np.asarray(z, dtype=np.float64)
    invalid = ~np.isfinite(z)
    if nodata_mask is not None:
        invalid |= nodata_mask
    has_invalid = bool(invalid.any())
    zc = np.where(invalid, np.nan, z) if has_invalid else z
    # The float64 division would cast the step to float64 anyway; doing it once here is the same.
    sx = np.asarray(8.0 * np.asarray(xres), dtype=np.float64)
    sy = np.asarray(8.0 * np.asarray(yres), dtype=np.float64)
    rows, cols = z.shape
    inside = np.s_[1:-1, 1:-1] if inner else np.s_[:, :]
    slope = np.empty(z[inside].shape, dtype=np.float32)
    needs_fill = np.zeros(z.shape, dtype=bool) if inner else np.ones(z.shape, dtype=bool)
    if rows >= 3 and cols >= 3:
        centre = np.s_[1:-1, 1:-1]
        interior = slope if inner else slope[centre]
        _horn_interior(zc, _step_at(sx, z.shape, centre), _step_at(sy, z.shape, centre), precise, interior)
        needs_fill[centre] = False
    if has_invalid:
        # The interior formula took NaN from nodata neighbours: grow the nodata by one pixel.
        near = invalid.copy()
        near[1:, :] |= invalid[:-1, :]
        near[:-1, :] |= invalid[1:, :]
        needs_fill |= near
        needs_fill[:, 1:] |= near[:, :-1]
        needs_fill[:, :-1] |= near[:, 1:]
        needs_fill &= ~invalid
        if inner:
            needs_fill[[0, -1], :] = needs_fill[:, [0, -1]] = False
        slope[invalid[inside]] = np.nan
    if inner and not has_invalid:
        return slope  # every pixel was inside, with valid neighbours
    # flatnonzero + divmod is several times faster than a 2-D nonzero here.
    r, c = np.divmod(np.flatnonzero(needs_fill), cols)
    if len(r):
        zp = np.pad(zc.astype(np.float64, copy=False), 1, mode="constant", constant_values=np.nan)
        fill = _horn_at(zp, r, c, _step_at(sx, z.shape, (r, c)), _step_at(sy, z.shape, (r, c)))
        slope[(r - 1, c - 1) if inner else (r, c)] = fill
    return slope


def _step_at(step: np.ndarray, shape: tuple[int, ...], index: tuple) -> np.ndarray:
    """``step`` (scalar, per-row column, or anything broadcasting to ``shape``) at ``index``."""
    return step if step.ndim == 0 else np.broadcast_to(step, shape)[index]


def _horn_interior(z: np.ndarray, sx: np.ndarray, sy: np.ndarray, precise: bool, out: np.ndarray) -> None:
    """Horn slope (degrees) of the pixels ``z[1:-1, 1:-1]``, whose neighbours are all in ``z`` (float32 or
    float64), into ``out``.

    With the window a b c / d e f / g h i, dz/dx is ``((c + 2f + i) - (a + 2d + g)) / sx``,
    and ``c + 2f + i`` of a pixel is ``a + 2d + g`` of the pixel two columns to the right:
    one sum per column serves both, and likewise one sum per row for dz/dy. The sums are
    taken in the order written, in float64, so every pixel gets the bits of the plain formula;
    ``out`` (float32) receives them rounded once, as assigning the float64 result would.
    Computed :data:`_BLOCK_ROWS` output rows at a time through the same few buffers, which stay in the cache.
    """
    rows, cols = z.shape[0] - 2, z.shape[1] - 2
    block = min(rows, _BLOCK_ROWS)
    twice, wide = np.empty((block + 2, cols + 2)), np.empty((block + 2, cols + 2))
    col_sums = np.empty((block, cols + 2))
    row_sums = np.empty((block + 2, cols))
    dzdx, dzdy = np.empty((block, cols)), np.empty((block, cols))
    for first in range(0, rows, block):
        n = min(block, rows - first)
        zb = z[first : first + n + 2]
        if zb.dtype != np.float64:  # widened here, while in the cache, not as a copy of the whole DEM
            np.copyto(wide[: n + 2], zb)
            zb = wide[: n + 2]
        z2 = np.multiply(zb, 2, out=twice[: n + 2])
        col = np.add(zb[:-2], z2[1:-1], out=col_sums[:n])  # a + 2d of every column
        np.add(col, zb[2:], out=col)  # + g
        row = np.add(zb[:, :-2], z2[:, 1:-1], out=row_sums[: n + 2])  # g + 2h of every row
        np.add(row, zb[:, 2:], out=row)  # + i
        x = np.subtract(col[:, 2:], col[:, :-2], out=dzdx[:n])
        np.divide(x, sx if sx.ndim == 0 else sx[first : first + n], out=x)
        y = np.subtract(row[2:], row[:-2], out=dzdy[:n])
        np.divide(y, sy if sy.ndim == 0 else sy[first : first + n], out=y)
        if precise:
            np.hypot(x, y, out=x)
        else:
            np.multiply(x, x, out=x)
            x += np.square(y, out=y)
            np.sqrt(x, out=x)
        np.arctan(x, out=x)
        np.multiply(x, _DEGREES_PER_RADIAN, out=x)  # np.degrees' own formula, without its slower loop
        out[first : first + n] = x


def _horn_at(zp: np.ndarray, r: np.ndarray, c: np.ndarray, sx: np.ndarray, sy: np.ndarray) -> np.ndarray:
    """Horn slope (float64 degrees) of pixels ``(r, c)`` of the NaN-padded raster ``zp``.

    A neighbour outside the raster or on nodata takes the centre's value, so edges
    and pixels next to nodata get a slope instead of a one-pixel hole. Inside the
    raster the result is identical to gdaldem/QGIS slope.
    """
    centre = zp[r + 1, c + 1]

    def neighbour(dr: int, dc: int) -> np.ndarray:
        n = zp[r + 1 + dr, c + 1 + dc]
        return np.where(np.isnan(n), centre, n)

    a, b, cc = neighbour(-1, -1), neighbour(-1, 0), neighbour(-1, 1)
    d, f = neighbour(0, -1), neighbour(0, 1)
    g, h, i = neighbour(1, -1), neighbour(1, 0), neighbour(1, 1)
    dzdx = ((cc + 2 * f + i) - (a + 2 * d + g)) / sx
    dzdy = ((g + 2 * h + i) - (a + 2 * b + cc)) / sy
    return np.degrees(np.arctan(np.hypot(dzdx, dzdy)))


def slope_for_grid(
    dem: np.ndarray,
    transform,
    is_geographic: bool,
    row_offset: int = 0,
    nodata_mask: np.ndarray | None = None,
    precise: bool = True,
    inner: bool = False,
) -> np.ndarray:
    """Slope of a DEM block whose first row is ``row_offset`` rows into ``transform``.

    For projected CRSs the pixel size comes straight from the affine transform;
    for geographic ones it is converted to metres at each row's latitude. ``precise``, ``inner``: see
    :func:`horn_slope`.
    """
    if transform.b != 0 or transform.d != 0:
        raise InputError("rotated DEM grids are not supported; warp the DEM to a north-up grid first")
    xres, yres = abs(transform.a), abs(transform.e)
    if is_geographic:
        rows = np.arange(dem.shape[0]) + row_offset + 0.5
        lat = transform.f + rows * transform.e
        per_lon, per_lat = metres_per_degree(lat)
        return horn_slope(dem, (xres * per_lon)[:, None], (yres * per_lat)[:, None], nodata_mask, precise, inner)
    return horn_slope(dem, xres, yres, nodata_mask, precise, inner)


def write_slope(
    dem_path: str | Path | Sequence[str],
    out_path: str | Path,
    block_rows: int = 1024,
    progress: Callable[[float], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
    block_cols: int = 4096,
    warn: Warn | None = None,
) -> Path:
    """Write the slope of ``dem_path`` (degrees, float32 GeoTIFF, same grid) to ``out_path``.

    Processes the DEM in blocks of ``block_rows`` x ``block_cols`` with a one-pixel halo, so memory is bounded
    in both dimensions (a few blocks of float64: about 100 MB) for DEMs of any size. Writes atomically:
    a read error, a full disk, a cancel (``cancelled()`` turning true) or a signal leaves no file. The output
    may not be the DEM itself. Several DEM tiles are mosaicked first (:mod:`landslide_engine.demtiles`).
    """
    import rasterio
    from rasterio.windows import Window

    from landslide_engine.demtiles import dem_files
    from landslide_engine.demtiles import dem_path as mosaic_path
    from landslide_engine.outputs import FLOAT_NODATA
    from landslide_engine.parameters import check_grid_size
    from landslide_engine.plausibility import check_elevations, check_one_band
    from landslide_engine.rasterio_io import open_raster
    from landslide_engine.targets import atomic_output, check_output_file, gdal_checked

    tiles = dem_files(str(dem_path) if isinstance(dem_path, (str, Path)) else dem_path)
    out_path = check_output_file(out_path, inputs=tiles, what="slope output")
    dem_path = mosaic_path(tiles)
    out_nodata = FLOAT_NODATA
    with open_raster(dem_path, what="DEM") as src:
        if src.transform.b != 0 or src.transform.d != 0:
            raise InputError(f"DEM {dem_path} has a rotated grid; warp it to a north-up grid first")
        profile = src.profile.copy()
        profile.update(
            driver="GTiff",
            count=1,
            dtype="float32",
            nodata=out_nodata,
            compress="deflate",
            tiled=True,
            blockxsize=256,
            blockysize=256,
            BIGTIFF="IF_SAFER",
        )
        profile.pop("photometric", None)
        geographic = bool(src.crs and src.crs.is_geographic)
        h, w = src.height, src.width
        check_one_band(src.count, dem_path, "DEM", tuple(src.descriptions))
        with reading(dem_path, "DEM"):  # a decimated look at the whole DEM: one pass, before the real one
            overview = src.read(1, out_shape=(min(h, 512), min(w, 512)), masked=True)
        check_elevations(overview.astype(np.float64).filled(np.nan), dem_path)
        check_grid_size(w, h, f"the slope of {dem_path}", "cut the DEM into tiles")
        blocks = [(r0, c0) for r0 in range(0, h, block_rows) for c0 in range(0, w, block_cols)]
        with (
            atomic_output(out_path, "slope output") as tmp,
            gdal_checked(out_path, "slope output"),
            rasterio.open(tmp, "w", **profile) as dst,
        ):
            dst.set_band_description(1, "slope_deg")
            for done, (r0, c0) in enumerate(blocks, start=1):
                if cancelled is not None and cancelled():
                    raise Cancelled("slope cancelled")
                r1, c1 = min(h, r0 + block_rows), min(w, c0 + block_cols)
                h0, h1 = max(0, r0 - 1), min(h, r1 + 1)
                w0, w1 = max(0, c0 - 1), min(w, c1 + 1)
                with reading(dem_path, "DEM"):
                    block = src.read(1, window=Window(w0, h0, w1 - w0, h1 - h0), masked=True)
                # Integer DEMs (SRTM, AW3D30: Int16 with nodata -32768/-32767) have no NaN: widen before filling.
                dem = block.astype(np.float64).filled(np.nan)
                slope = slope_for_grid(dem, src.transform, geographic, row_offset=h0)
                slope = slope[r0 - h0 : r1 - h0, c0 - w0 : c1 - w0]
                slope = np.where(np.isfinite(slope), slope, out_nodata).astype(np.float32)
                dst.write(slope, 1, window=Window(c0, r0, c1 - c0, r1 - r0))
                if progress is not None:
                    progress(100.0 * done / len(blocks))
    return Path(out_path)
