"""Helpers of the fault suite (tests/engine/test_faults_*.py, tests/plugin/test_faults_qgis.py): hostile files built
in the test, the CLI run as a real process, and the assertions every fault case makes (exit code, one line, no
traceback, the exact files left)."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np

from landslide_engine.bands import L4S_BANDS
from tests.paths import ROOT


def cli(
    *args,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    file_size_limit: int | None = None,
    module: str = "landslide_engine",
    timeout: float = 300,
) -> subprocess.CompletedProcess:
    """``python -m landslide_engine ARGS`` (or ``module``) as a separate process, as an analyst runs it.

    ``file_size_limit`` (bytes) makes every write beyond it fail as on a full disk (RLIMIT_FSIZE, with
    SIGXFSZ ignored so the write returns EFBIG instead of killing the process).
    """

    def limit() -> None:
        if file_size_limit is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", module, *map(str, args)],
        cwd=cwd or ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=limit,
    )


def assert_refused(proc: subprocess.CompletedProcess, *needles: str, code: int = 2) -> str:
    """Exit ``code`` with exactly one line on stderr besides warnings, no traceback, containing every needle;
    returns the line."""
    lines = problem_lines(proc.stderr)
    assert proc.returncode == code, proc.stderr
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert all(ch.isprintable() for ch in lines[0]), repr(lines[0])
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def problem_lines(stderr: str) -> list[str]:
    """The lines of ``stderr`` that are not the engine's ``warning: ...`` lines (which may precede an error)."""
    return [line for line in stderr.strip().splitlines() if not line.startswith("warning: ")]


def files_under(folder: Path) -> set[str]:
    """Every file and folder under ``folder`` (hidden ones included), relative to it."""
    if not folder.exists():
        return set()
    return {str(path.relative_to(folder)) for path in folder.rglob("*")}


def metadata_dict(**overrides) -> dict:
    """Valid package metadata for a 14-band model, with ``overrides`` (which may make it invalid)."""
    data = {
        "name": "tiny",
        "architecture": "plain_unet",
        "encoder": None,
        "bands": list(L4S_BANDS),
        "mean": [1.0] * 14,
        "std": [0.5] * 14,
        "input_scaling": "l4s",
        "tile_size": 128,
        "threshold": 0.5,
        "fillable_bands": {},
        "training_data": {},
        "metrics": {},
        "architecture_options": {"base_width": 16},
        "schema_version": 1,
    }
    data.update(overrides)
    return data


def onnx_package(
    path: Path,
    metadata: dict | None = None,
    *,
    input_shape=("N", 14, 128, 128),
    output_shape=("N", 1, 128, 128),
    out_channels: int = 1,
    external_location: str | None = None,
) -> Path:
    """A one-layer ONNX package (a 1×1 convolution of the bands) with ``metadata`` embedded.

    ``external_location`` stores the weights as ONNX external data in that file instead of in the model.
    """
    from onnx import TensorProto, helper, numpy_helper

    from landslide_engine.models.package import ONNX_METADATA_KEY

    weights = numpy_helper.from_array(np.full((out_channels, 14, 1, 1), 0.01, np.float32), "w")
    if external_location is not None:
        weights.ClearField("raw_data")
        weights.data_location = TensorProto.EXTERNAL
        entry = weights.external_data.add()
        entry.key, entry.value = "location", external_location
    graph = helper.make_graph(
        [helper.make_node("Conv", ["input", "w"], ["logits"])],
        "hostile",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, list(input_shape))],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, list(output_shape))],
        [weights],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    entry = model.metadata_props.add()
    entry.key, entry.value = ONNX_METADATA_KEY, json.dumps(metadata or metadata_dict())
    path.write_bytes(model.SerializeToString())
    return path
