"""Train and evaluate the paper's model table (``python -m training zoo``).

Each model is trained with the same recipe and split into ``OUT/<model>/``; the table puts our
scores (on labelled TestData when available, else validation) beside the paper's, with both the
official global protocol and the Seed's per-batch mean F1, the parameter count and inference
speed. A model that cannot be built or trained gets its error in the table and the others go on.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from landslide_engine.errors import InputError
from landslide_engine.models.registry import MODEL_SPECS, PAPER_MODEL_NAMES, create_model
from training.fitting.distributed import select_device
from training.fitting.trainer import TrainConfig, train
from training.studies.throughput import inference_patches_per_second, parameter_count

COLUMNS = (
    "model",
    "split",
    "f1",
    "precision",
    "recall",
    "iou",
    "batch_mean_f1",
    "paper_f1",
    "paper_precision",
    "paper_recall",
    "paper_iou",
    "params",
    "patches_per_s",
    "epochs",
    "error",
)


@dataclass(frozen=True)
class ZooResult:
    rows: list[dict[str, Any]]
    markdown: Path
    csv: Path


def parse_model_list(text: str) -> list[str]:
    """``all`` -> the paper's 13 models; else comma-separated registry names, each checked."""
    if text.strip() == "all":
        return list(PAPER_MODEL_NAMES)
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in MODEL_SPECS]
    if unknown or not names:
        raise InputError(f"--models {text!r}: unknown model(s) {unknown}; known: all, {', '.join(MODEL_SPECS)}")
    return names


def run_zoo(models: list[str], base: TrainConfig) -> ZooResult:
    """Train every model in ``models`` with ``base`` (its ``model`` and ``out`` replaced per model); write the table."""
    out = Path(base.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in models:
        rows.append(_zoo_row(name, replace(base, model=name, out=out / name)))
        write_table(rows, out / "zoo.md", out / "zoo.csv")
    return ZooResult(rows, out / "zoo.md", out / "zoo.csv")


def _zoo_row(name: str, config: TrainConfig) -> dict[str, Any]:
    spec = MODEL_SPECS[name]
    row: dict[str, Any] = {"model": name, **{f"paper_{key}": value for key, value in spec.paper_metrics.items()}}
    try:
        result = train(config)
    except (InputError, RuntimeError) as exc:
        return {**row, "error": str(exc).splitlines()[0]}
    split = "test" if "test" in result.metrics else "val"
    scores = result.metrics[split]
    model = create_model(name)
    device = select_device(config.device)
    return {
        **row,
        "split": split,
        **{key: scores[key] for key in ("f1", "precision", "recall", "iou", "batch_mean_f1")},
        "params": parameter_count(model),
        "patches_per_s": inference_patches_per_second(model, device),
        "epochs": result.metrics["epochs_trained"],
    }


def write_table(rows: list[dict[str, Any]], markdown: Path, csv_path: Path) -> None:
    """The zoo table as CSV (all columns) and Markdown (numbers rounded, blanks for unknown)."""
    with csv_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows([{key: row.get(key) for key in COLUMNS} for row in rows])
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_cell(row.get(key)) for key in COLUMNS) + " |" for row in rows]
    markdown.write_text("\n".join(lines) + "\n")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3f}" if value < 100 else f"{value:.0f}"
    if isinstance(value, int) and value >= 10_000:
        return f"{value / 1e6:.2f} M"
    return str(value).replace("|", "/")
