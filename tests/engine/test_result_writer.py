"""The result rasters' writer: strips filled in place into one row of blocks, NaN as no data, strip buffers reused."""

from __future__ import annotations

import time

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.transform import from_origin

from landslide_engine.grid import Grid
from landslide_engine.outputs import FLOAT_NODATA, MASK_NODATA, ResultRasters
from landslide_engine.streaming import BackgroundWriter, StageClock
from landslide_engine.tiling import RowBlender, blend_weights, tile_starts


def _grid(width: int, height: int) -> Grid:
    return Grid(CRS.from_epsg(32633), from_origin(500000, 5200000, 10, 10), width, height)


def _probability(height: int, width: int) -> np.ndarray:
    """Probabilities around the threshold, with the values a model or the blending can give: NaN where a
    chunk had no data, infinities from a broken model, exactly the threshold, zero and negative zero."""
    p = np.random.default_rng(height + width).random((height, width), dtype=np.float32)
    p[40:45, 100:130] = np.nan
    p[7, :50] = np.inf
    p[8, :50] = -np.inf
    p[9, :50] = 0.5
    p[10, :50] = -0.0
    return p


def _written(tmp_path, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    with rasterio.open(tmp_path / "p.tif") as p, rasterio.open(tmp_path / "m.tif") as m:
        assert p.nodata == FLOAT_NODATA and m.nodata == MASK_NODATA
        assert (p.width, p.height) == (grid.width, grid.height)
        return p.read(1), m.read(1)


@pytest.mark.parametrize(("width", "height"), [(600, 700), (300, 90)], ids=["tiled", "strips"])
@pytest.mark.parametrize("marked", ["nan", "flags"])
def test_no_data_marked_by_nan_or_by_flags_is_written_as_the_old_where_and_astype_wrote_it(
    tmp_path, width, height, marked
):
    grid = _grid(width, height)
    probability = _probability(height, width)
    valid = np.isfinite(probability)
    valid[200:210] = False  # flags may also mark finite values as no data
    rasters = ResultRasters(str(tmp_path / "p.tif"), str(tmp_path / "m.tif"), grid, 0.5)
    for row in range(0, height, 96):  # strips that do not line up with the blocks of either raster
        strip = probability[row : row + 96]
        if marked == "nan":
            strip = np.where(valid[row : row + 96], strip, np.nan)
            rasters.write_rows(row, strip)
        else:
            rasters.write_rows(row, strip, valid[row : row + 96])
    rasters.close()
    p, m = _written(tmp_path, grid)
    # what the writer wrote before it filled its buffers in place, value for value and bit for bit
    expected_p = np.where(valid, probability, FLOAT_NODATA).astype(np.float32)
    expected_m = np.where(valid, valid & (probability >= 0.5), MASK_NODATA).astype(np.uint8)
    assert p.tobytes() == expected_p.tobytes()
    np.testing.assert_array_equal(m, expected_m)
    assert rasters.landslide_pixels == int(np.count_nonzero(expected_m == 1))
    assert (m[9, :50] == 1).all() and np.signbit(p[10, :50]).all()


def test_column_bands_of_different_widths_fill_the_raster_and_an_unfinished_band_is_refused(tmp_path):
    width, height = 600, 300
    grid = _grid(width, height)
    probability = np.random.default_rng(3).random((height, width), dtype=np.float32)
    rasters = ResultRasters(str(tmp_path / "p.tif"), str(tmp_path / "m.tif"), grid, 0.5)
    for start, stop in ((0, 512), (512, 600)):  # the last band narrower than the first
        for row in range(0, height, 128):
            rasters.write_rows(row, probability[row : row + 128, start:stop], col=start)
    rasters.close()
    p, m = _written(tmp_path, grid)
    np.testing.assert_array_equal(p, probability)
    np.testing.assert_array_equal(m, (probability >= 0.5).astype(np.uint8))

    unfinished = ResultRasters(str(tmp_path / "p2.tif"), str(tmp_path / "m2.tif"), grid, 0.5)
    unfinished.write_rows(0, probability[:128, :512])
    with pytest.raises(ValueError, match="left unfinished"):
        unfinished.write_rows(0, probability[:128, 512:], col=512)
    with pytest.raises(ValueError, match="in order"):
        unfinished.write_rows(0, probability[:128, :512])
    unfinished.close()


class _CopyingRasters:
    """Keeps a copy of every strip it is given, after a pause that lets the next strip be filled meanwhile."""

    def __init__(self) -> None:
        self.strips: list[np.ndarray] = []

    def write_rows(self, row: int, probability: np.ndarray, valid: np.ndarray | None = None, col: int = 0) -> None:
        assert valid is None  # NaN marks no data
        time.sleep(0.02)
        self.strips.append(probability.copy())


def test_strip_buffers_take_turns_and_a_strip_is_not_overwritten_while_it_is_written():
    rasters = _CopyingRasters()
    writer = BackgroundWriter(rasters, StageClock())
    strips = [writer.strip(4, 6) for _ in range(3)]
    assert strips[0] is not strips[1] and not np.shares_memory(strips[0], strips[1])
    assert np.shares_memory(strips[0], strips[2])  # the two buffers are used again, in turn
    for k in range(6):
        strip = writer.strip(4 if k < 5 else 3, 6)  # the last strip of a band may be shorter
        strip[...] = k  # filled while the one before is still being written
        writer.write_rows(4 * k, strip)
    wider = writer.strip(4, 10)
    assert wider.shape == (4, 10)
    writer.finish()
    writer.close()
    assert [s.shape for s in rasters.strips] == [(4, 6)] * 5 + [(3, 6)]
    assert [np.unique(s).tolist() for s in rasters.strips] == [[k] for k in range(6)]


@pytest.mark.parametrize("overlap", [0, 32])
def test_rows_taken_into_a_given_array_equal_those_taken_into_a_new_one(overlap):
    height, width, tile = 300, 250, 128
    rng = np.random.default_rng(overlap)
    rows, cols = tile_starts(height, tile, overlap), tile_starts(width, tile, overlap)
    patches = {(r, c): rng.random((tile, tile), dtype=np.float32) for r in rows for c in cols}
    patches[rows[0], cols[0]][5:9, 5:9] = np.nan
    carried = (rng.random((height, 20), dtype=np.float32), rng.random((height, 20), dtype=np.float32))
    results = []
    for into in (False, True):
        blender = RowBlender(width, tile, overlap)
        taken, extras = [], []
        for k, top in enumerate(rows):
            for c in cols:
                blender.add(patches[top, c], top, c)
            until = rows[k + 1] if k + 1 < len(rows) else height
            start = blender.first_row
            out = np.full((until - start, 200), -1, np.float32) if into else None
            block, extra = blender.take_rows(until, (carried[0][start:until], carried[1][start:until]), 200, out)
            assert out is None or block is out
            taken.append(block.copy())
            extras.append(extra)
        results.append((np.concatenate(taken), [np.concatenate(e) for e in zip(*extras, strict=True)]))
    (a, extra_a), (b, extra_b) = results
    assert a.tobytes() == b.tobytes()
    for x, y in zip(extra_a, extra_b, strict=True):
        assert x.tobytes() == y.tobytes()
    # and the mosaic is the weighted mean, sum(w * p) / sum(w), with the carried sums added to the first columns
    weights = blend_weights(tile, overlap)
    total, weight = np.zeros((height, width), np.float64), np.zeros((height, width), np.float64)
    for (r, c), p in patches.items():
        rs, cs = slice(max(r, 0), min(r + tile, height)), slice(max(c, 0), min(c + tile, width))
        pr, pc = slice(rs.start - r, rs.stop - r), slice(cs.start - c, cs.stop - c)
        total[rs, cs] += p[pr, pc] * weights[pr, pc]
        weight[rs, cs] += weights[pr, pc]
    total[:, :20] += carried[0]
    weight[:, :20] += carried[1]
    np.testing.assert_allclose(a, (total / weight)[:, :200], rtol=1e-5)
    if overlap == 0:  # the patch with NaN starts at the scene's corner: NaN stays NaN
        assert np.isnan(a[5:9, 5:9]).all()


def test_probability_is_zstd_or_deflate_without_a_predictor_and_the_mask_deflate(tmp_path):
    from osgeo import gdal

    grid = _grid(300, 300)
    # a trained model's output: mostly exact zeros, few distinct values elsewhere
    probability = np.zeros((300, 300), np.float32)
    probability[100:180, 50:250] = np.random.default_rng(5).choice([0.01, 0.2, 0.55, 0.9], (80, 200))
    rasters = ResultRasters(str(tmp_path / "p.tif"), str(tmp_path / "m.tif"), grid, 0.5)
    rasters.write_rows(0, probability)
    rasters.close()
    has_zstd = "ZSTD" in gdal.GetDriverByName("GTiff").GetMetadataItem("DMD_CREATIONOPTIONLIST")
    p, m = gdal.Open(str(tmp_path / "p.tif")), gdal.Open(str(tmp_path / "m.tif"))
    assert p.GetMetadata("IMAGE_STRUCTURE")["COMPRESSION"] == ("ZSTD" if has_zstd else "DEFLATE")
    assert "PREDICTOR" not in p.GetMetadata("IMAGE_STRUCTURE")  # it doubled the write's CPU on model output
    assert m.GetMetadata("IMAGE_STRUCTURE")["COMPRESSION"] == "DEFLATE"  # the mask: any TIFF reader
    assert p.GetRasterBand(1).ReadAsArray().tobytes() == probability.tobytes()
    p = m = None
