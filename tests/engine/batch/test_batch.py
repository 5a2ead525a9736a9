"""``batch``: many real scenes into per-scene outputs, regional mosaics and one layer of polygons.

The scenes are overlapping crops of the real Aberystwyth Sentinel-2 mosaic (10 bands, reflectance x 1000,
British National Grid) with its real SRTM DEM (Int16, geographic); a corrupt scene is a real crop cut short.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from landslide_engine.batch import BatchRequest, run_batch
from landslide_engine.batch.mosaic import MosaicScene, build_regional_outputs, priority_order
from landslide_engine.batch.scenes import plan_scenes, scene_id
from landslide_engine.cli import main
from landslide_engine.errors import InputError
from landslide_engine.pipeline import PredictRequest, predict_scene
from tests.rasters import write_raster
from tests.scenes import NO_ATMOSPHERIC, SIZE, FakeRunner, features

OPTIONS = {"reflectance_scale": "x1000"}


def batch(scenes, out: Path, names=("west", "east", "corrupt"), runner=None, **options) -> object:
    request = BatchRequest(
        scenes=[str(scenes[n]) for n in names], dems=[str(scenes["dem"])], out_dir=str(out), options=OPTIONS | options
    )
    return run_batch(request, runner=runner or FakeRunner(bands=NO_ATMOSPHERIC))


def read(path: Path) -> tuple[np.ndarray, rasterio.Affine]:
    with rasterio.open(path) as src:
        return src.read(1), src.transform


def test_scenes_map_like_predict_and_a_corrupt_scene_fails_alone(scenes, tmp_path):
    result = batch(scenes, tmp_path / "out")
    status = {o.scene_id: o for o in result.outcomes}
    assert [status[n].status for n in ("west", "east", "corrupt")] == ["done", "done", "failed"]
    reason = status["corrupt"].reason
    assert str(scenes["corrupt"]) in reason or "corrupt.tif" in reason
    assert "\n" not in reason
    assert not (tmp_path / "out" / "corrupt").exists()
    assert not list((tmp_path / "out").rglob(".*"))  # no temporaries left

    # Each scene's folder holds exactly what predict writes for that scene.
    for name in ("west", "east"):
        alone = predict_scene(
            PredictRequest(s2=[str(scenes[name])], dem=str(scenes["dem"]), out_dir=str(tmp_path / name), **OPTIONS),
            runner=FakeRunner(bands=NO_ATMOSPHERIC),
        )
        folder = tmp_path / "out" / name
        assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in (tmp_path / name).iterdir())
        for raster in ("probability.tif", "landslides.tif"):
            ours, theirs = read(folder / raster), read(tmp_path / name / raster)
            np.testing.assert_array_equal(ours[0], theirs[0])
            assert ours[1] == theirs[1]
        assert features(folder / "landslides.gpkg") == features(alone.polygons)
        ours, theirs = json.loads((folder / "run.json").read_text()), json.loads(alone.report.read_text())
        for key in ("inputs", "grid", "model", "patches", "landslides", "landslide_area_m2", "threshold"):
            assert ours[key] == theirs[key], key
        assert ours["outputs"]["run.json"] == str(folder / "run.json")
        assert status[name].landslides == theirs["landslides"]
        assert status[name].valid_pixels == status[name].pixels == SIZE[0] * SIZE[1]

    report = json.loads(result.report.read_text())
    assert report["counts"] == {"done": 2, "skipped": 0, "failed": 1}
    assert report["scenes"][2]["reason"] == reason and report["scenes"][0]["seconds"] > 0


def test_mosaics_follow_the_stated_overlap_rule(scenes, tmp_path):
    result = batch(scenes, tmp_path / "out", names=("west", "east"))
    regional = result.regional
    west, west_t = read(tmp_path / "out" / "west" / "probability.tif")
    east, east_t = read(tmp_path / "out" / "east" / "probability.tif")
    mosaic, mosaic_t = read(regional.probability)
    mask_mosaic, _ = read(regional.mask)
    which, _ = read(regional.scenes)
    # equal shares of valid pixels and no product dates: the scene id decides, so "west" wins
    assert regional.order == ["east", "west"]
    assert mosaic_t.c == west_t.c and mosaic_t.f == west_t.f
    dx, dy = round((east_t.c - west_t.c) / 10), round((west_t.f - east_t.f) / 10)
    assert mosaic.shape == (dy + SIZE[1], dx + SIZE[0])
    h, w = west.shape
    np.testing.assert_array_equal(mosaic[:h, :w], west)  # the winner everywhere it has data
    east_only = np.ones(east.shape, bool)
    east_only[: h - dy, : w - dx] = False  # the part of east that west covers
    np.testing.assert_array_equal(mosaic[dy:, dx:][east_only], east[east_only])
    assert (mosaic[dy:, dx:][~east_only] != east[~east_only]).any()  # the scenes differ where they overlap
    assert (which[:h, :w] == 2).all() and (which[dy:, dx:][east_only] == 1).all()
    assert ((mask_mosaic == 1) == (mosaic >= 0.5)).all()
    assert (tmp_path / "out" / "probability.qml").read_text() == (
        tmp_path / "out" / "west" / "probability.qml"
    ).read_text()

    polygons = features(regional.polygons)
    assert len(polygons) == regional.landslides > 0
    assert {p["scene"] for p in polygons} <= {"west", "east"}
    assert all(p["scene"] in p["scenes"].split(",") for p in polygons)
    with open(regional.probability) as f:
        assert 'relativeToVRT="1">west/probability.tif' in f.read()  # the folder can move as a whole


def test_rerun_skips_complete_scenes_and_refuses_other_options(scenes, tmp_path):
    out = tmp_path / "out"
    first = batch(scenes, out)
    mtime = (out / "west" / "probability.tif").stat().st_mtime_ns
    runner = FakeRunner(bands=NO_ATMOSPHERIC)
    again = batch(scenes, out, runner=runner)
    assert [o.status for o in again.outcomes] == ["skipped", "skipped", "failed"]
    assert (out / "west" / "probability.tif").stat().st_mtime_ns == mtime
    assert runner.calls == 0  # nothing was mapped twice
    assert [o.landslides for o in again.outcomes[:2]] == [o.landslides for o in first.outcomes[:2]]
    assert again.regional.landslides == first.regional.landslides
    with pytest.raises(InputError, match="threshold"):
        batch(scenes, out, threshold=0.9)


def test_a_scene_is_complete_or_absent(scenes, tmp_path):
    out = tmp_path / "out"
    (out / "west").mkdir(parents=True)
    (out / "west" / "probability.tif").write_bytes(b"half")  # a run killed before it published its report

    class Failing(FakeRunner):
        def predict(self, x):
            if self.calls >= 3:
                raise RuntimeError("the model crashed\nwith a second line")
            return super().predict(x)

    result = batch(scenes, out, names=("west", "east"), runner=Failing(bands=NO_ATMOSPHERIC))
    west, east = result.outcomes
    assert west.status == "done" and (out / "west" / "run.json").is_file()  # mapped again, not skipped
    with rasterio.open(out / "west" / "probability.tif") as src:
        assert src.shape == (SIZE[1], SIZE[0])
    assert east.status == "failed" and east.reason == "RuntimeError: the model crashed"
    assert not (out / "east").exists()
    assert not [p for p in out.rglob(".*")]  # no temporaries anywhere
    assert result.regional.order == ["west"]


def test_a_folder_of_other_inputs_is_neither_skipped_nor_overwritten(scenes, tmp_path):
    out = tmp_path / "out"
    batch(scenes, out, names=("west",))
    (out / "west").rename(out / "east")  # west's outputs where east's would go
    result = batch(scenes, out, names=("west", "east"))
    assert [o.status for o in result.outcomes] == ["done", "failed"]
    assert "holds the outputs of" in result.outcomes[1].reason and "west.tif" in result.outcomes[1].reason
    report = json.loads((out / "east" / "run.json").read_text())
    assert report["inputs"]["s2"] == [str(scenes["west"])]  # untouched


def test_polygons_cut_by_a_scene_edge_are_merged(tmp_path):
    """Scene A ends across a landslide that scene B covers whole: one polygon drawing on both."""
    crs, res = "EPSG:32633", 10.0
    shape = (40, 60)

    def scene(name: str, left: float, landslide: slice) -> MosaicScene:
        folder = tmp_path / name
        folder.mkdir()
        prob = np.full(shape, 0.1, np.float32)
        prob[10:20, landslide] = 0.9
        transform = from_origin(left, 1000.0, res, res)
        write_raster(folder / "probability.tif", prob, crs, transform, nodata=-9999.0)
        write_raster(folder / "landslides.tif", (prob >= 0.5).astype(np.uint8), crs, transform, nodata=255)
        return MosaicScene(name, folder, crs, valid_share=1.0 if name == "a" else 0.9, product_date=None)

    a = scene("a", 0.0, slice(50, 60))  # the landslide runs into A's right edge (columns 50-59)
    b = scene("b", 300.0, slice(20, 30))  # B starts 30 columns in: its columns 20-29 are A's 50-59 ...
    with rasterio.open(b.folder / "probability.tif", "r+") as dst:  # ... and the landslide goes on to 39
        prob = dst.read(1)
        prob[10:20, 30:40] = 0.9
        dst.write(prob, 1)
    with rasterio.open(b.folder / "landslides.tif", "r+") as dst:
        dst.write((prob >= 0.5).astype(np.uint8), 1)

    regional = build_regional_outputs([b, a], tmp_path)
    assert [s.scene_id for s in priority_order([a, b])] == ["b", "a"]  # A is clearer: it wins the overlap
    (polygon,) = features(regional.polygons)
    assert polygon["area_m2"] == pytest.approx(10 * 20 * res * res)
    assert polygon["scene"] in ("a", "b") and sorted(polygon["scenes"].split(",")) == ["a", "b"]
    assert regional.landslides == 1


def test_every_scene_gets_the_regions_dem_and_scenes_need_distinct_names(tmp_path):
    assert scene_id("/x/S2A_MSIL1C_20230101.SAFE/") == "S2A_MSIL1C_20230101"
    assert scene_id("T45RUL_20150505.tif") == "T45RUL_20150505"
    jobs = plan_scenes(["a.tif", "b.tif"], ["dem.tif"])
    assert [j.dem for j in jobs] == [os.path.abspath("dem.tif")] * 2 and jobs[0].s2 == os.path.abspath("a.tif")
    tiles = [os.path.abspath(t) for t in ("n27.tif", "n28.tif")]
    assert [j.dem for j in plan_scenes(["a.tif", "b.tif"], ["n27.tif", "n28.tif"])] == [tiles, tiles]
    with pytest.raises(InputError, match="both write the folder a"):
        plan_scenes(["x/a.tif", "y/a.tif"], ["dem.tif"])


def test_cli_batch_with_the_builtin_model_exits_2_after_all_ran(scenes, tmp_path, capsys):
    args = ["batch", scenes["west"], scenes["corrupt"], scenes["east"], "--dem", scenes["dem"]]
    args += ["--reflectance-scale", "x1000", "--out", tmp_path / "out"]
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    assert code == 2
    failed = [line for line in captured.err.splitlines() if "failed" in line]
    assert len(failed) == 1 and failed[0].startswith("corrupt: failed: ") and "Traceback" not in captured.err
    assert "west: done" in captured.out and "east: done" in captured.out
    assert "2 done, 0 skipped, 1 failed" in captured.out
    scales = [line for line in captured.out.splitlines() if line.startswith("note: ") and "x1000" in line]
    assert [line.split(":")[1].strip() for line in scales] == ["west", "east"]  # what each scene's run found
    b1 = [line for line in captured.err.splitlines() if "band B1 is not in the input" in line]
    assert [line.split(":")[:2] for line in b1] == [["warning", " west"], ["warning", " east"]]  # once per scene
    assert (tmp_path / "out" / "landslides.gpkg").is_file()
    code = main([str(a) for a in args[:2] + args[3:]])  # the good scenes only: skipped, exit 0
    assert code == 0 and "2 skipped" in capsys.readouterr().out


def test_cli_batch_refuses_an_output_folder_that_is_a_file(scenes, tmp_path, capsys):
    target = tmp_path / "taken"
    target.write_text("not a folder")
    code = main(["batch", str(scenes["west"]), "--dem", str(scenes["dem"]), "--out", str(target)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0] == f"error: --out {target} is a file, not a folder"


@pytest.mark.parametrize(
    ("share", "device", "cluster", "resources", "actors"),
    [
        (None, "cuda", {"CPU": 16, "GPU": 2}, {"num_cpus": 0, "num_gpus": 1.0}, 2),  # a whole GPU each, as before
        (None, "auto", {"CPU": 16, "GPU": 2}, {"num_cpus": 1, "num_gpus": 0.0}, 16),  # a CPU slot each
        (0.5, "cuda", {"CPU": 16, "GPU": 2}, {"num_cpus": 0, "num_gpus": 0.5}, 4),  # two actors per GPU
        (1 / 3, "auto", {"CPU": 16, "GPU": 2}, {"num_cpus": 0, "num_gpus": 1 / 3}, 6),  # 2 / (1/3) is 5.999...
        (0.25, "cuda", {"CPU": 16, "GPU": 8}, {"num_cpus": 0, "num_gpus": 0.25}, 20),  # capped at the scenes
        (0, "auto", {"CPU": 3, "GPU": 1}, {"num_cpus": 1, "num_gpus": 0.0}, 3),  # CPU only on a GPU node
    ],
)
def test_ray_actors_ask_the_share_of_a_gpu_they_are_given(share, device, cluster, resources, actors):
    from landslide_engine.batch.ray_executor import actor_count, actor_resources

    built = actor_resources(share, device)
    assert built == pytest.approx(resources)
    assert actor_count(cluster, built, scenes=20, actors=None) == actors


def test_ray_actor_class_carries_the_resource_request_to_ray():
    ray = pytest.importorskip("ray", reason="Ray is not installed (make setup-ray)")
    from landslide_engine.batch.ray_executor import RETRIES, actor_class, actor_resources

    options = actor_class(ray, actor_resources(0.5, "auto"))._default_options  # built without a cluster
    assert (options["num_gpus"], options["num_cpus"], options["max_task_retries"]) == (0.5, 0, RETRIES)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--executor", "ray", "--ray-gpus-per-actor", "1.5"], "--ray-gpus-per-actor must be a share of one GPU "
         "from 0 to 1 (0.5: two actors per GPU; 0: CPUs only), not 1.5"),
        (["--executor", "ray", "--ray-gpus-per-actor", "nan"], "--ray-gpus-per-actor must be a share of one GPU"),
        (["--executor", "ray", "--ray-gpus-per-actor", "-0.5"], "not -0.5"),
        (["--executor", "ray", "--ray-gpus-per-actor", "0.5", "--device", "cpu"],
         "--ray-gpus-per-actor 0.5 reserves GPUs that --device cpu would not use; use 0"),
        (["--executor", "ray", "--ray-gpus-per-actor", "0", "--device", "cuda"],
         "--ray-gpus-per-actor 0 gives the actors no GPU, but --device cuda needs one"),
        (["--ray-gpus-per-actor", "0.5"], "--ray-gpus-per-actor is for --executor ray"),
    ],
)  # fmt: skip
def test_cli_batch_refuses_a_gpu_share_that_does_not_fit_before_writing(scenes, tmp_path, capsys, args, message):
    out = tmp_path / "out"
    code = main(["batch", str(scenes["west"]), "--dem", str(scenes["dem"]), "--out", str(out), *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: --ray-gpus-per-actor ") and message in err[0], err
    assert not out.exists()  # refused before the folder or batch.json is written
