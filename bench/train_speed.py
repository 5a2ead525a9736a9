"""Training speed per zoo model: patches per second of forward + loss + backward + Adam step.

Benchmark, not a test: ``python bench/train_speed.py [--models all|NAMES] [--batch-size 16] [--steps 5]``
from the repository root. It measures on the CPU and, when torch sees a CUDA GPU, on the GPU in
float32 and with bf16 autocast (the default recipe's mixed precision), and prints a Markdown table.
Input is synthetic: speed does not depend on pixel values.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from landslide_engine.models.registry import (
    MODEL_SPECS,
    create_model,
)
from training.studies.throughput import parameter_count, training_patches_per_second


def measure(name: str, batch_size: int, steps: int, devices: list[torch.device]) -> dict[str, str]:
    """One table row; a model that cannot be built or run gets its error instead of numbers."""
    row = {"model": name}
    try:
        torch.manual_seed(0)
        model = create_model(name)
        row["params (M)"] = f"{parameter_count(model) / 1e6:.2f}"
        for device in devices:
            row[f"{device.type} fp32"] = f"{training_patches_per_second(model, device, batch_size, steps):.1f}"
            if device.type == "cuda":
                speed = training_patches_per_second(model, device, batch_size, steps, mixed_precision=True)
                row["cuda bf16"] = f"{speed:.1f}"
    except Exception as exc:  # report and go on to the next model
        row["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0]
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="all", help="all, or comma-separated registry names")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per model and device")
    parser.add_argument("--cpu-threads", type=int, help="torch.set_num_threads for the CPU rows")
    args = parser.parse_args(argv)
    names = list(MODEL_SPECS) if args.models == "all" else [n.strip() for n in args.models.split(",")]
    unknown = [name for name in names if name not in MODEL_SPECS]
    if unknown:
        parser.error(f"unknown model(s) {unknown}; known: {', '.join(MODEL_SPECS)}")
    if args.cpu_threads:
        torch.set_num_threads(args.cpu_threads)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no GPU"
    print(
        f"Training patches/s, batch {args.batch_size}, {args.steps} timed steps, torch {torch.__version__}, "
        f"{torch.get_num_threads()} CPU threads{gpu}\n"
    )
    rows = []
    for name in names:
        rows.append(measure(name, args.batch_size, args.steps, devices))
        print(f"measured {name}", file=sys.stderr)
    columns = ["model", "params (M)", *(f"{d.type} fp32" for d in devices)]
    columns += ["cuda bf16"] if torch.cuda.is_available() else []
    columns += ["error"] if any("error" in row for row in rows) else []
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(row.get(column, "") for column in columns) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
