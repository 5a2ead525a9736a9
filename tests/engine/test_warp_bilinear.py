"""GridWarp's own bilinear interpolation of coarser sources gives GDAL's warp, pixel for pixel.

The reference is always GDAL: the same warped VRT over the grid and its margin that GridWarp keeps (or, beyond
the margin, the VRT built for that window). Interpolated values may differ from it by one float32 ulp where the
exact value lies on (or within double rounding of) a tie between two float32 numbers, which half-pixel weights
make common; NaN patterns and everything else must be identical.
"""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.enums import Resampling
from rasterio.transform import from_origin
from rasterio.windows import Window

from landslide_engine.grid import reference_grid
from landslide_engine.warp import GRID_MARGIN, GridWarp, _warped_vrt, choose_resampling
from tests.rasters import gdal_window, write_raster

# The 10 m image (and so the grid) starts at x 500000, y 5200000 and is 150 x 120 pixels.
IMAGE_ORIGIN = (500000.0, 5200000.0)
GRID_WIDTH, GRID_HEIGHT = 150, 120
# The 30 m DEM starts 3.7 m left of and 4.1 m above the grid, so no DEM pixel centre falls on a grid pixel centre,
# and ends 41 x 37 pixels later: inside the grid on the right and at the bottom (1230 m < 1500 m, 1110 m < 1200 m).
DEM_ORIGIN = (IMAGE_ORIGIN[0] - 3.7, IMAGE_ORIGIN[1] + 4.1)
DEM_WIDTH, DEM_HEIGHT = 41, 37
NODATA = -9999.0


def _dem() -> np.ndarray:
    yy, xx = np.mgrid[0:DEM_HEIGHT, 0:DEM_WIDTH]
    rng = np.random.default_rng(11)
    dem = (700 + 9.3 * xx + 4.7 * yy + 35 * np.sin(xx / 2.3) * np.cos(yy / 3.1)).astype("float32")
    dem += rng.uniform(-1, 1, dem.shape).astype("float32")
    dem[10, 12] = NODATA  # a single void: grid pixels around (row 31, col 37)
    dem[20:23, 25:28] = NODATA  # a 3 x 3 void: grid rows ~60-69, columns ~75-84
    dem[30, 5] = np.nextafter(np.float32(NODATA), np.float32(0))  # an ulp off nodata: GDAL still calls it nodata
    dem[5, 33] = np.nan  # not declared nodata: GDAL interpolates it as NaN
    return dem


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bilinear")
    write_raster(folder / "dem30.tif", _dem(), "EPSG:32633", from_origin(*DEM_ORIGIN, 30, 30), nodata=NODATA)
    return folder, _grid_10m(folder, GRID_HEIGHT, GRID_WIDTH)


def _grid_10m(folder, height: int, width: int):
    """The reference grid of a 10 m image of ``height`` x ``width`` pixels at IMAGE_ORIGIN (written to ``folder``)."""
    image = write_raster(
        folder / "image.tif",
        np.ones((1, height, width), dtype="uint16"),
        "EPSG:32633",
        from_origin(*IMAGE_ORIGIN, 10, 10),
        nodata=0,
    )
    return reference_grid([str(image)])


def _in_margin(grid, window) -> bool:
    m = GRID_MARGIN
    return (
        window.col_off >= -m
        and window.row_off >= -m
        and window.col_off + window.width <= grid.width + m
        and window.row_off + window.height <= grid.height + m
    )


def _gdal(src, grid, bands, window, nodata):
    """GDAL's bilinear warp of ``bands`` on ``window``: from a VRT over the grid and GridWarp's margin, as GridWarp
    keeps it, or from one for the window where the window leaves that margin."""
    m = GRID_MARGIN
    if not _in_margin(grid, window):
        return np.stack([gdal_window(src, b, grid, window, Resampling.bilinear, nodata) for b in bands])
    extent = Window(-m, -m, grid.width + 2 * m, grid.height + 2 * m)
    with _warped_vrt(src, grid, extent, Resampling.bilinear, nodata) as vrt:
        return vrt.read(bands, window=Window(window.col_off + m, window.row_off + m, window.width, window.height))


def assert_matches_gdal(ours: np.ndarray, gdal: np.ndarray) -> float:
    """NaN exactly where GDAL has NaN, other values within one float32 ulp of GDAL's; the share of them that is
    bit-identical is returned (1 when there are none)."""
    assert ours.dtype == np.float32 and ours.shape == gdal.shape
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(gdal))
    finite = ~np.isnan(gdal)
    a, b = ours[finite], gdal[finite]
    assert (np.abs(a - b) <= np.spacing(np.abs(b))).all(), float(np.abs(a - b).max())
    return float((a == b).mean()) if a.size else 1.0


class CountingReads:
    """Stands in for GridWarp's cached VRT and counts the reads that reach it."""

    def __init__(self, vrt) -> None:
        self.vrt = vrt
        self.reads = 0

    def __getattr__(self, name):
        return getattr(self.vrt, name)

    def read(self, *args, **kwargs):
        self.reads += 1
        return self.vrt.read(*args, **kwargs)


@pytest.mark.parametrize(
    ("window", "needs_gdal"),
    [
        (Window(0, 0, GRID_WIDTH, GRID_HEIGHT), True),  # everything: edges, voids and the part past the DEM
        (Window(5, 40, 60, 15), False),  # interior, no void in reach
        (Window(30, 25, 16, 14), False),  # around the single void: its rim is weighed here as GDAL weighs it
        (Window(70, 55, 25, 25), False),  # around the 3 x 3 void
        (Window(5, 80, 25, 20), True),  # around the value an ulp off nodata
        (Window(-1, -1, 66, 20), False),  # a 1 px halo over the grid's top-left corner: GDAL's edge rule, here
        (Window(100, 90, 50, 30), True),  # the grid's bottom-right corner, past the DEM's last pixel centres
        (Window(-GRID_MARGIN - 5, 10, 30, 20), True),  # beyond the cached VRT's margin
        (Window(140, 115, 30, 20), True),  # beyond the DEM and the margin altogether: all NaN
    ],
)
def test_a_coarser_dem_is_interpolated_as_gdal_does(scene, window, needs_gdal):
    folder, grid = scene
    with rasterio.open(folder / "dem30.tif") as src:
        assert choose_resampling(src, grid) == Resampling.bilinear
        warp = GridWarp(src, grid, Resampling.bilinear)
        try:
            assert warp.separable and not warp.direct
            warp._vrt = counting = CountingReads(warp._vrt)
            ours = warp.read(1, window)
        finally:
            warp.close()
        gdal = _gdal(src, grid, [1], window, NODATA)[0]
    assert ours.shape == (window.height, window.width)
    assert np.isfinite(ours).any() == (window.col_off < 140)
    identical = assert_matches_gdal(ours, gdal)
    # Nearly every value is GDAL's to the bit (all but a handful here); the others lie on float32 ties.
    assert identical > 0.99
    # The fast path asks the cached VRT only for pixels it cannot compute (none in the interior); windows beyond
    # its margin get them from a VRT of their own.
    assert (counting.reads > 0) == (needs_gdal and _in_margin(grid, window))


def test_voids_and_the_area_past_the_dem_are_nan_as_gdal_makes_them(scene):
    folder, grid = scene
    with rasterio.open(folder / "dem30.tif") as src:
        warp = GridWarp(src, grid, Resampling.bilinear)
        try:
            whole = warp.read(1, Window(0, 0, GRID_WIDTH, GRID_HEIGHT))
        finally:
            warp.close()
    # GDAL renormalises the weights around a void: only pixels whose four neighbours are all void (those between
    # the void's pixel centres) are NaN; the ones around them keep values from their valid neighbours.
    assert np.isnan(whole[63:67, 78:82]).all()
    assert np.isfinite(whole[55:58, 70:90]).all()
    # Past the DEM's last pixel (x 1226.3 m, y 1105.9 m from the grid's corner) there is no data.
    assert np.isnan(whole[:, 123:]).all() and np.isnan(whole[111:]).all()
    assert np.isfinite(whole[:110, :122]).sum() > 0.95 * 110 * 122


@pytest.mark.parametrize("size", [10, 20, 30, 60])
@pytest.mark.parametrize(("dtype", "nodata"), [("float32", NODATA), ("float32", None), ("int16", -32768)])
def test_pixel_sizes_types_and_nodata_settings_match_gdal(scene, tmp_path, size, dtype, nodata):
    _, grid = scene
    rng = np.random.default_rng(size)
    width, height = GRID_WIDTH * 10 // size + 2, GRID_HEIGHT * 10 // size + 2
    data = rng.uniform(-100, 2000, (height, width)).astype(dtype)
    if nodata is not None:
        data[height // 2, width // 3] = nodata
    path = write_raster(
        tmp_path / "src.tif", data, "EPSG:32633", from_origin(499993.1, 5200006.4, size, size), nodata=nodata
    )
    window = Window(-1, -1, GRID_WIDTH + 2, GRID_HEIGHT + 2)
    with rasterio.open(path) as src:
        warp = GridWarp(src, grid, Resampling.bilinear)
        try:
            assert warp.separable
            ours = warp.read([1], window)
        finally:
            warp.close()
        gdal = _gdal(src, grid, [1], window, nodata)
    assert assert_matches_gdal(ours, gdal) > 0.99


@pytest.fixture(scope="module")
def bands20(scene):
    """A 3-band uint16 20 m source, nodata 0: zero in one band only in one place, in all bands in another."""
    folder, _ = scene
    rng = np.random.default_rng(7)
    data = rng.integers(1, 4000, (3, 62, 77)).astype("uint16")
    data[1, 20, 30] = 0  # band 2 only: GDAL's mask spans all bands, so this is a value there, not a void
    data[:, 40:42, 50:53] = 0  # all bands
    return write_raster(folder / "b20.tif", data, "EPSG:32633", from_origin(499990, 5200010, 20, 20), nodata=0)


@pytest.mark.parametrize(
    "window", [Window(0, 0, GRID_WIDTH, GRID_HEIGHT), Window(50, 30, 20, 20), Window(95, 75, 15, 15)]
)
@pytest.mark.parametrize("bands", [[1, 2, 3], [2], [3, 1]])
def test_a_multiband_uint16_source_at_20m_matches_gdal(scene, bands20, window, bands):
    _, grid = scene
    with rasterio.open(bands20) as src:
        warp = GridWarp(src, grid, choose_resampling(src, grid))
        try:
            assert warp.separable
            ours = warp.read(bands, window)
            single = warp.read(bands[0], window)
        finally:
            warp.close()
        gdal = _gdal(src, grid, bands, window, 0)
    assert ours.shape == (len(bands), window.height, window.width)
    assert assert_matches_gdal(ours, gdal) > 0.99
    np.testing.assert_array_equal(single, ours[0])


def test_a_source_finer_than_the_grid_or_in_float64_goes_through_gdal(scene, tmp_path):
    # (A coarser source in another CRS is interpolated by GridWarp too: tests/engine/test_warp_reproject.py.)
    folder, grid = scene
    dem = _dem()
    finer = write_raster(tmp_path / "fine.tif", dem, "EPSG:32633", from_origin(500010, 5199990, 5, 5), nodata=NODATA)
    # GDAL's warper rounds float64 values to its float32 working type before interpolating them.
    double = write_raster(
        tmp_path / "double.tif", dem.astype("float64"), "EPSG:32633", from_origin(*DEM_ORIGIN, 30, 30), nodata=NODATA
    )
    window = Window(3, 4, 40, 30)
    for path in (finer, double):
        with rasterio.open(path) as src:
            warp = GridWarp(src, grid, Resampling.bilinear)
            try:
                assert not warp.separable and not warp.direct and not warp.reprojected
                ours = warp.read(1, window)
            finally:
                warp.close()
            np.testing.assert_array_equal(ours, _gdal(src, grid, [1], window, NODATA)[0])
    # Sources on the grid read directly are not interpolated either.
    with rasterio.open(folder / "image.tif") as src:
        warp = GridWarp(src, grid, Resampling.nearest)
        try:
            assert warp.direct and not warp.separable
        finally:
            warp.close()


def test_a_no_data_wedge_and_its_rim_need_no_gdal_warp(tmp_path):
    """A granule at the edge of the swath: its no-data wedge is NaN without warping, and its rim is weighed as GDAL
    weighs it (no data under the pixel centre, else the valid neighbours renormalised), still equal to GDAL's."""
    width = height = 600  # 10 m grid pixels; the source is 20 m, nodata 0 as Sentinel-2 marks it
    grid = _grid_10m(tmp_path, height, width)
    rows, cols = np.mgrid[0 : height // 2, 0 : width // 2]
    data = np.random.default_rng(3).integers(1, 4000, (2, height // 2, width // 2)).astype("uint16")
    data[:, cols + rows < 200] = 0
    path = write_raster(tmp_path / "b20.tif", data, "EPSG:32633", from_origin(*IMAGE_ORIGIN, 20, 20))
    windows = {
        "inside": Window(10, 10, 200, 96),  # away from the grid's edges, where the source ends too
        "rim": Window(10, 300, 580, 96),
        "with data": Window(380, 400, 200, 96),
    }
    reads, results = {}, {}
    with rasterio.open(path) as src:
        warp = GridWarp(src, grid, Resampling.bilinear, src_nodata=0)
        try:
            assert warp.separable
            warp._vrt = counting = CountingReads(warp._vrt)
            for name, window in windows.items():
                before = counting.reads
                results[name] = warp.read([1, 2], window)
                reads[name] = counting.reads - before
        finally:
            warp.close()
        for name, window in windows.items():
            assert assert_matches_gdal(results[name], _gdal(src, grid, [1, 2], window, 0)) > 0.99, name
    assert np.isnan(results["inside"]).all() and np.isfinite(results["with data"]).all()
    assert reads == {"inside": 0, "rim": 0, "with data": 0}
    rim = results["rim"][0]
    assert np.isnan(rim).any() and np.isfinite(rim).any()
    # Some rim pixels have both valid and no-data neighbours: the renormalised ones, compared with GDAL above.
    r, c = np.mgrid[300:396, 10:590]
    mixed = (np.abs((c + 0.5) / 2 - 0.5 + (r + 0.5) / 2 - 0.5 - 200) < 1.5) & np.isfinite(rim)
    assert mixed.sum() > 50
