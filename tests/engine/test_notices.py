"""The engine's warning channel: every warning reaches the caller's ``warn``, ``run.json`` and the logger once."""

from __future__ import annotations

import json
import logging

import numpy as np
import rasterio

from landslide_engine.cli import main
from landslide_engine.notices import delivered
from landslide_engine.pipeline import PredictRequest, predict_scene, stack_to_file
from tests.scenes import NO_ATMOSPHERIC, FakeRunner

FILLED = "B10 is not in the input"


def test_predict_scene_tells_warn_each_warning_once_and_reports_and_logs_them(aberystwyth, tmp_path, caplog):
    s2, dem, extent = aberystwyth
    told: list[str] = []
    runner = FakeRunner(fillable={"B1": 1.0, "B9": 1.0, "B10": 1.0})
    request = PredictRequest(
        s2=[str(s2)], dem=str(dem), out_dir=str(tmp_path), extent=extent, reflectance_scale="x1000"
    )
    with caplog.at_level(logging.WARNING, logger="landslide_engine"):
        result = predict_scene(request, runner=runner, warn=told.append)
    assert any(FILLED in line for line in told)
    assert told == result.warnings == json.loads(result.report.read_text())["warnings"]
    assert len(told) == len(set(told))
    logged = [r for r in caplog.records if r.name == "landslide_engine"]
    assert [r.getMessage() for r in logged] == told and all(delivered(r) for r in logged)


def test_without_warn_the_log_record_is_not_marked_delivered(aberystwyth, tmp_path, caplog):
    s2, dem, extent = aberystwyth
    with caplog.at_level(logging.WARNING, logger="landslide_engine"):
        stack_to_file(
            [str(s2)], str(dem), str(tmp_path / "stack.tif"), bands=[*NO_ATMOSPHERIC, "B10"],
            fill_values={"B10": 1.0}, reflectance_scale="x1000", extent=extent,
        )  # fmt: skip
    filled = [r for r in caplog.records if FILLED in r.getMessage()]
    assert len(filled) == 1 and not delivered(filled[0])


def test_stack_to_file_tells_warn(aberystwyth, tmp_path):
    s2, dem, extent = aberystwyth
    told: list[str] = []
    stack_to_file(
        [str(s2)], str(dem), str(tmp_path / "stack.tif"), bands=[*NO_ATMOSPHERIC, "B10"], fill_values={"B10": 1.0},
        reflectance_scale="x1000", extent=extent, warn=told.append,
    )  # fmt: skip
    assert len([line for line in told if FILLED in line]) == 1


def test_the_cli_prints_each_warning_once_as_a_warning_line(aberystwyth, tmp_path, capsys):
    s2, dem, extent = aberystwyth
    args = ["stack", "--s2", str(s2), "--dem", str(dem), "--reflectance-scale", "x1000", "--extent"]
    args += [str(v) for v in extent] + ["--fill", "B1=1", "B9=1", "B10=1", "--out", str(tmp_path / "s.tif")]
    assert main(args) == 0
    captured = capsys.readouterr()
    err = captured.err.splitlines()
    filled = [line for line in err if FILLED in line]
    assert len(filled) == 1 and filled[0].startswith("warning: band B10")
    assert all(line.startswith("warning: ") for line in err if line.strip())
    notes = [line for line in captured.out.splitlines() if line.startswith("note: ")]
    assert len(notes) == 1 and notes[0].startswith("note: reflectance scale x1000 (reflectance_scale option, which")
    with rasterio.open(tmp_path / "s.tif") as src:
        assert np.isfinite(src.read(1)).any()
