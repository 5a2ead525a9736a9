"""End to end on the real Landslide4Sense patches: train a tiny model, evaluate, export, resume, DDP.

The narrow plain U-Net (16 base channels) keeps each run to a few seconds on 2 CPU cores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import onnxruntime as ort
import pytest
import torch

from landslide_engine.errors import InputError
from landslide_engine.models.package import load_package, load_torch_model
from landslide_engine.models.registry import MODEL_SPECS
from tests.paths import ROOT
from training.cli import main
from training.data.splits import resolve_splits
from training.fitting.recipes import DEFAULT, SEED
from training.fitting.trainer import TrainConfig, TrainingInterrupted, train

MODEL = "unet_resnet18"
FAST = ["--epochs", "2", "--batch-size", "2", "--max-steps-per-epoch", "2", "--workers", "0", "--device", "cpu"]


@pytest.fixture(scope="module")
def trained(l4s_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("train")
    code = main(["train", "--data", str(l4s_root), "--model", MODEL, *FAST, "--quiet", "--out", str(out)])
    assert code == 0
    return out


def test_train_writes_packages_metrics_and_plots(trained: Path, l4s_root: Path) -> None:
    metrics = json.loads((trained / "metrics.json").read_text())
    assert metrics["epochs_trained"] == 2
    for key in ("precision", "recall", "f1", "iou", "batch_mean_f1", "tp", "fp", "fn"):
        assert key in metrics["val"]
    assert 0.0 <= metrics["val"]["f1"] <= 1.0
    csv_lines = (trained / "metrics.csv").read_text().splitlines()
    assert csv_lines[0].startswith("split,threshold,precision,recall,f1,iou") and csv_lines[1].startswith("val,")
    assert len((trained / "history.csv").read_text().splitlines()) == 3
    for name in ("learning_curves", "pr_curve", "examples"):
        assert (trained / "plots" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    metadata = load_package(trained / f"{MODEL}.onnx").metadata
    assert metadata.threshold == pytest.approx(metrics["threshold"])
    assert metadata.metrics["val"]["f1"] == pytest.approx(metrics["val"]["f1"])
    assert metadata.training_data["n_val"] == len(metrics_val_ids := metadata.training_data["val_ids"])
    # the default recipe normalizes with statistics of the training split only
    train_ids = {p.patch_id for p in resolve_splits(l4s_root).train}
    assert train_ids.isdisjoint(metrics_val_ids)
    pixels = []
    for patch_id in sorted(train_ids):
        with h5py.File(l4s_root / "TrainData" / "img" / f"image_{patch_id}.h5", "r") as handle:
            pixels.append(np.asarray(handle["img"], dtype=np.float32).reshape(-1, 14))
    stacked = np.concatenate(pixels).astype(np.float64)
    np.testing.assert_allclose(metadata.mean, stacked.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(metadata.std, stacked.std(axis=0), rtol=1e-4)


def test_evaluate_json_matches_training_scores(trained: Path, l4s_root: Path, capsys: pytest.CaptureFixture) -> None:
    metrics = json.loads((trained / "metrics.json").read_text())
    capsys.readouterr()
    package = trained / f"{MODEL}.pt"
    assert main(["evaluate", "--model", str(package), "--data", str(l4s_root), "--split", "val", "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert {"precision", "recall", "f1", "iou"} <= scores.keys()
    for key in ("precision", "recall", "f1", "iou"):
        assert scores[key] == pytest.approx(metrics["val"][key], abs=1e-3)


def test_export_from_checkpoint_agrees_with_pytorch(trained: Path, l4s_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "exported.onnx"
    assert main(["export", "--checkpoint", str(trained / "checkpoint.pt"), "--out", str(out)]) == 0
    package = load_package(out)
    torch_model = load_torch_model(load_package(trained / f"{MODEL}.pt"))
    assert package.metadata.to_dict() == load_package(trained / f"{MODEL}.pt").metadata.to_dict()
    with h5py.File(l4s_root / "TrainData" / "img" / "image_1.h5", "r") as handle:
        image = np.asarray(handle["img"], dtype=np.float32).transpose(2, 0, 1)
    mean = np.asarray(package.metadata.mean, dtype=np.float32)[:, None, None]
    std = np.asarray(package.metadata.std, dtype=np.float32)[:, None, None]
    batch = np.stack([(image - mean) / std] * 3)  # the batch axis is dynamic: 3 != the exporter's 2
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (onnx_logits,) = session.run(None, {session.get_inputs()[0].name: batch})
    with torch.no_grad():
        torch_logits = torch_model(torch.from_numpy(batch)).numpy()
    assert onnx_logits.shape == (3, 1, 128, 128)
    np.testing.assert_allclose(onnx_logits, torch_logits, atol=1e-3)
    assert session.get_modelmeta().custom_metadata_map  # metadata embedded in the one file
    assert not list(tmp_path.glob("*.data"))  # no external weight files


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_torch_model(load_package(path)).state_dict()


def test_interrupt_then_resume_equals_an_uninterrupted_run(l4s_root: Path, tmp_path: Path) -> None:
    recipe = DEFAULT.with_overrides(epochs=2, batch_size=2)

    def config(out: Path, resume: Path | None = None) -> TrainConfig:
        return TrainConfig(
            data=l4s_root, model=MODEL, out=out, recipe=recipe, seed=3, device="cpu",
            max_steps_per_epoch=2, export_onnx=False, progress=False, resume=resume,
        )  # fmt: skip

    straight = train(config(tmp_path / "straight"))

    def interrupt(epoch: int, step: int, loss: float) -> None:
        if (epoch, step) == (1, 0):
            raise KeyboardInterrupt

    with pytest.raises(TrainingInterrupted) as interrupted:
        train(config(tmp_path / "interrupted"), on_step=interrupt)
    checkpoint = interrupted.value.checkpoint
    assert checkpoint.is_file() and not (tmp_path / "interrupted" / f"{MODEL}.pt").exists()
    resumed = train(config(tmp_path / "interrupted", resume=checkpoint))

    assert [row["train_loss"] for row in resumed.history] == [row["train_loss"] for row in straight.history]
    expected, actual = _weights(straight.packages[0]), _weights(resumed.packages[0])
    assert all(torch.equal(expected[key], actual[key]) for key in expected)

    with pytest.raises(InputError, match="recipe settings"):
        train(TrainConfig(**{**config(tmp_path / "other", checkpoint).__dict__, "recipe": SEED}))


def test_ddp_two_cpu_processes(l4s_root: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    command += ["-m", "training", "train", "--data", str(l4s_root), "--model", MODEL, "--recipe", "seed"]
    command += [*FAST, "--epochs", "1", "--batch-size", "4", "--no-onnx", "--quiet", "--out", str(tmp_path)]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    metadata = load_package(tmp_path / f"{MODEL}.pt").metadata
    assert metadata.training_data["world_size"] == 2
    assert metadata.threshold == 0.5  # the Seed recipe keeps its fixed threshold
    assert json.loads((tmp_path / "metrics.json").read_text())["epochs_trained"] == 1


def test_zoo_table_puts_paper_numbers_beside_ours(l4s_root: Path, tmp_path: Path) -> None:
    paper_model = "unet_resnet34"
    args = ["zoo", "--data", str(l4s_root), "--models", paper_model, *FAST, "--epochs", "1"]
    assert main([*args, "--max-steps-per-epoch", "1", "--no-onnx", "--quiet", "--out", str(tmp_path)]) == 0
    header, row = (tmp_path / "zoo.csv").read_text().splitlines()[:2]
    assert header.split(",")[:8] == ["model", "split", "f1", "precision", "recall", "iou", "batch_mean_f1", "paper_f1"]
    fields = dict(zip(header.split(","), row.split(","), strict=True))
    assert fields["model"] == paper_model and fields["error"] == ""
    assert float(fields["paper_f1"]) == MODEL_SPECS[paper_model].f1
    assert 0.0 <= float(fields["f1"]) <= 1.0
    assert int(fields["params"]) > 1_000_000 and float(fields["patches_per_s"]) > 0
    assert f"| {paper_model} |" in (tmp_path / "zoo.md").read_text()
