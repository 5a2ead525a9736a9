"""The training CLI typed in a real terminal: one step exits 0 without a traceback (see tests/terminal.py)."""

from __future__ import annotations

import pytest

from tests.terminal import assert_ran_cleanly, run_in_terminal


def test_training_one_step_in_a_terminal(l4s_root, tmp_path):
    pytest.importorskip("torch", reason="training needs torch")
    code, shown = run_in_terminal(
        "-m", "training", "train", "--data", l4s_root, "--model", "unet_plain_w16", "--epochs", "1",
        "--batch-size", "2", "--max-steps-per-epoch", "1", "--workers", "0", "--device", "cpu", "--no-onnx",
        "--out", tmp_path / "run",
    )  # fmt: skip
    assert_ran_cleanly(code, shown)
    assert (tmp_path / "run" / "unet_plain_w16.pt").exists()
