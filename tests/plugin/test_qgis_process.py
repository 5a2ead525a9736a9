"""The packaged plugin zip loads in qgis_process.bin and its algorithms run there."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.transform import from_origin

from tests.qgis_helpers import (
    QGIS_PROCESS,
    build_plugin_zip,
    qgis_process_env,
    run_json,
    run_qgis_process,
    synthetic_scene,
    tiny_model_package,
)
from tests.rasters import write_raster
from tests.scenes import offset_unknown_scene

pytestmark = pytest.mark.skipif(not __import__("os").path.exists(QGIS_PROCESS), reason="qgis_process.bin not installed")


@pytest.fixture(scope="module")
def installed_plugin(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("qgis_process")
    zip_path = build_plugin_zip(tmp)
    plugins = tmp / "plugins"
    with zipfile.ZipFile(zip_path) as zf:
        names = zf.namelist()
        zf.extractall(plugins)
    env = qgis_process_env(plugins, tmp / "profile")
    proc = run_qgis_process(["plugins", "enable", "landslide_qgis"], env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return env, names


def test_zip_has_qgis_layout(installed_plugin):
    _, names = installed_plugin
    assert "landslide_qgis/metadata.txt" in names
    assert "landslide_qgis/__init__.py" in names
    assert "landslide_qgis/landslide_engine/slope.py" in names
    assert not any("__pycache__" in n for n in names)


def test_provider_and_slope_listed(installed_plugin):
    env, _ = installed_plugin
    proc = run_qgis_process(["list"], env)
    assert proc.returncode == 0
    assert "landslide:slope" in proc.stdout


def test_slope_runs_through_qgis_process(installed_plugin, tmp_path):
    env, _ = installed_plugin
    xx = np.arange(40)[None, :].repeat(30, 0).astype(np.float32)
    dem = xx * 10.0  # 10 m pixels rising 10 m per pixel: 45 degrees
    t = from_origin(300000, 5000000, 10, 10)
    src = write_raster(tmp_path / "dem.tif", dem, CRS.from_epsg(32633), t)
    out = tmp_path / "slope.tif"
    result = run_json(["run", "landslide:slope", "--", f"DEM={src}", f"OUTPUT={out}"], env)
    assert result["results"]["OUTPUT"] == str(out)
    with rasterio.open(out) as s:
        assert s.crs == CRS.from_epsg(32633) and s.transform == t and s.shape == (30, 40)
        assert np.allclose(s.read(1)[1:-1, 1:-1], 45.0, atol=1e-3)


def test_landslide_algorithms_listed(installed_plugin):
    env, _ = installed_plugin
    proc = run_qgis_process(["list"], env)
    for alg in ("landslide:detect", "landslide:stack", "landslide:predict_h5"):
        assert alg in proc.stdout


def test_detect_runs_through_qgis_process(installed_plugin, tmp_path):
    env, _ = installed_plugin
    s2, dem = synthetic_scene(tmp_path)
    model = tiny_model_package(tmp_path / "tiny.onnx")
    out = tmp_path / "out"
    result = run_json(
        [
            "run",
            "landslide:detect",
            "--",
            f"SENTINEL2={s2}",
            f"DEM={dem}",
            f"MODEL_FILE={model}",
            "DEVICE=cpu",
            "THRESHOLD=0.5",
            f"OUTPUT_PROBABILITY={out / 'probability.tif'}",
            f"OUTPUT_MASK={out / 'mask.tif'}",
            f"OUTPUT_POLYGONS={out / 'landslides.gpkg'}",
        ],
        env,
    )["results"]
    assert result["OUTPUT_PROBABILITY"] == str(out / "probability.tif")
    with rasterio.open(out / "probability.tif") as prob, rasterio.open(s2) as src:
        assert prob.crs == src.crs and prob.transform == src.transform and prob.shape == src.shape
    assert (out / "landslides.gpkg").exists() and result["N_LANDSLIDES"] >= 0
    assert result["DEVICE_USED"].startswith("cpu")


def test_detect_input_error_is_reported_on_one_line(installed_plugin, tmp_path):
    env, _ = installed_plugin
    s2, dem = synthetic_scene(tmp_path)
    missing = tmp_path / "missing.onnx"
    outputs = [f"{name}=TEMPORARY_OUTPUT" for name in ("OUTPUT_PROBABILITY", "OUTPUT_MASK", "OUTPUT_POLYGONS")]
    proc = run_qgis_process(
        ["run", "landslide:detect", "--", f"SENTINEL2={s2}", f"DEM={dem}", f"MODEL_FILE={missing}", *outputs], env
    )
    assert proc.returncode != 0
    assert f"model file not found: {missing}" in proc.stdout + proc.stderr


def test_detect_on_real_aberystwyth_shows_the_filled_band_warning(installed_plugin, geo_root, tmp_path):
    """The real ARCSI product lacks B1, B9 and B10: the built-in model's constants fill them, and the log says so."""
    env, _ = installed_plugin
    folder = geo_root / "rsgislib_aberystwyth_wales"
    out = tmp_path / "out"
    proc = run_qgis_process(
        [
            "run",
            "landslide:detect",
            "--",
            f"SENTINEL2={folder / 'sen2_20210527_aber_subset.tif'}",
            f"DEM={folder / 'AberSRTM_4326.tif'}",
            "DEVICE=cpu",
            "BAND_MAP=B2=1,B3=2,B4=3,B5=4,B6=5,B7=6,B8=7,B11=9,B12=10",
            f"OUTPUT_PROBABILITY={out / 'probability.tif'}",
            f"OUTPUT_MASK={out / 'mask.tif'}",
            f"OUTPUT_POLYGONS={out / 'landslides.gpkg'}",
        ],
        env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "band B1 is not in the input; filled with the model's constant" in proc.stdout
    assert "band B10 is not in the input; filled" in proc.stdout
    assert "Found: reflectance scale x1000 (detected:" in proc.stdout  # the default scale, read from the scene
    assert (out / "probability.qml").is_file()  # the style travels with the Toolbox output


def test_detect_region_runs_through_qgis_process(installed_plugin, scenes, tmp_path):
    """Two overlapping real scenes and a corrupt one: the mosaics, the polygons and the failure's line."""
    env, _ = installed_plugin
    out = tmp_path / "region"
    args = ["run", "landslide:detect_region", "--"]
    args += [f"SCENES={scenes[name]}" for name in ("west", "corrupt", "east")]
    args += [f"DEM={scenes['dem']}", "DEVICE=cpu", "REFLECTANCE_SCALE=x1000", f"OUTPUT_FOLDER={out}"]
    proc = run_qgis_process(["--json", *args], env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout[proc.stdout.index("{") :])["results"]
    assert (result["SCENES_MAPPED"], result["SCENES_FAILED"]) == (2, 1)
    assert result["OUTPUT_PROBABILITY"] == str(out / "probability.vrt")
    assert "corrupt: failed: cannot read" in proc.stdout + proc.stderr
    with rasterio.open(out / "probability.vrt") as mosaic, rasterio.open(out / "west" / "probability.tif") as west:
        assert mosaic.crs == west.crs and mosaic.width > west.width
        assert mosaic.read(1, masked=True).count() > west.width * west.height  # both scenes show
    assert result["N_LANDSLIDES"] == sum(1 for _ in _features(out / "landslides.gpkg")) > 0


def _features(path):
    from osgeo import ogr

    datasource = ogr.Open(str(path))
    yield from datasource.GetLayer(0)


def test_qgis_process_takes_the_baseline_offset_and_names_it_when_refused(installed_plugin, geo_root, tmp_path):
    """A real scene whose values cannot tell the baseline 04.00 offset: refused naming BASELINE_OFFSET, which the
    command line then sets (the static-string enum takes the engine's label, 1000)."""
    env, _ = installed_plugin
    s2, dem = offset_unknown_scene(geo_root, tmp_path)
    args = ["run", "landslide:stack", "--", f"SENTINEL2={s2}", f"DEM={dem}"]
    proc = run_qgis_process([*args, f"OUTPUT={tmp_path / 'refused.tif'}"], env)
    assert proc.returncode != 0 and not (tmp_path / "refused.tif").exists()
    assert "set the baseline offset (BASELINE_OFFSET): 0 or 1000" in proc.stdout + proc.stderr
    result = run_json([*args, "BASELINE_OFFSET=1000", f"OUTPUT={tmp_path / 'stack.tif'}"], env)["results"]
    assert result["OUTPUT"] == str(tmp_path / "stack.tif") and (tmp_path / "stack.tif").is_file()
