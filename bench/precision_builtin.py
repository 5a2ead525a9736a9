"""The shipped built-in model in fp32 and in its shipped int8 version: accuracy cost and speed on the CPU.

`bench/run.py` measures reduced precision on untrained networks, which only compares number formats. This
script measures the two files the engine chooses between (``default.onnx`` and ``default.int8.onnx``, the
latter written by ``python -m landslide_engine quantize --model builtin --calibration L4S_ROOT``, i.e.
calibrated on the 15 labelled TrainData patches), run by the engine's own runner (``create_runner``, ONNX
Runtime on the CPU, default workers), on real Landslide4Sense patches:

* accuracy: mean probability difference and the int8 mask's F1 against the fp32 mask, on the patches that did
  not calibrate it (TestData, Unlabelled) and on TrainData, where F1 against the labels is in-sample;
* speed: patches per second of each runner over the same patches, the two runs interleaved ``--rounds`` times so
  that a shared machine's load falls on both alike; the ratio is the number to read.

The cross-validated F1 of both formats is ``python -m training crossval --int8`` (MODEL_CARD.md).

    .venv/bin/python bench/precision_builtin.py [L4S_ROOT] [--rounds N]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.quantize import accuracy_cost  # noqa: E402
from landslide_engine.h5io import read_l4s_image, read_l4s_mask  # noqa: E402
from landslide_engine.models.backends import create_runner  # noqa: E402
from landslide_engine.models.catalog import builtin_model_path, int8_version  # noqa: E402
from landslide_engine.scores import Confusion  # noqa: E402


def patches(folder: Path) -> tuple[np.ndarray, list[Path]]:
    files = sorted(folder.glob("*.h5"))
    return np.stack([read_l4s_image(p) for p in files]), files


def speeds(runners: dict, x: np.ndarray, rounds: int) -> dict[str, float]:
    """Patches per second of each runner on ``x``, best of ``rounds`` interleaved runs (after one warm-up)."""
    best = dict.fromkeys(runners, 0.0)
    for runner in runners.values():
        runner.predict(x[:16])
    for _ in range(rounds):
        for name, runner in runners.items():
            started = time.perf_counter()
            runner.predict(x)
            best[name] = max(best[name], len(x) / (time.perf_counter() - started))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("l4s_root", nargs="?", type=Path, default=ROOT.parent / "shared" / "data" / "landslide4sense")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    fp32_path = builtin_model_path()
    int8_path = int8_version(fp32_path)
    if int8_path is None:
        sys.exit(f"no int8 version beside {fp32_path}")
    runners = {name: create_runner(path, device="cpu") for name, path in (("fp32", fp32_path), ("int8", int8_path))}
    threshold = runners["fp32"].metadata.threshold
    train, train_files = patches(args.l4s_root / "TrainData" / "img")
    masks = np.stack([read_l4s_mask(args.l4s_root / "TrainData" / "mask" / p.name.replace("image", "mask"))
                      for p in train_files])  # fmt: skip
    held_out = np.concatenate([patches(args.l4s_root / d / "img")[0] for d in ("TestData", "Unlabelled")])
    print(f"built-in model {runners['fp32'].metadata.name}: {fp32_path.name} and {int8_path.name}, threshold "
          f"{threshold}, ONNX Runtime on the CPU, {runners['fp32'].workers} worker(s), "
          f"load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    print()
    print("| patches | mean abs prob diff | int8 mask vs fp32 mask (F1) | F1 vs labels fp32 | F1 vs labels int8 |")
    print("|---|---|---|---|---|")
    for label, x, truth in (
        (f"TestData + Unlabelled ({len(held_out)}, not used to calibrate)", held_out, None),
        (f"TrainData ({len(train)}, labelled; calibrated and trained on)", train, masks),
    ):
        reference, reduced = runners["fp32"].predict(x), runners["int8"].predict(x)
        cost = accuracy_cost(reference, reduced, threshold)
        scored = ["-", "-"]
        if truth is not None:
            scored = [f"{Confusion.from_masks(p >= threshold, truth).scores()['f1']:.3f}" for p in (reference, reduced)]
        print(f"| {label} | {cost['mean_abs_diff']:.2e} | {cost['mask_f1_vs_fp32']:.3f} | {scored[0]} | {scored[1]} |")
    timed = np.concatenate([held_out, train] * 4)  # every real patch, four times: long enough to time
    speed = speeds(runners, timed, args.rounds)
    print()
    print(f"Speed on {len(timed)} real patches (best of {args.rounds} interleaved rounds): fp32 "
          f"{speed['fp32']:.1f} patches/s, int8 {speed['int8']:.1f}: **{speed['int8'] / speed['fp32']:.2f}x**; "
          f"load average after {os.getloadavg()[0]:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
