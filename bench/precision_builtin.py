"""Accuracy cost of int8 (static QDQ) for the shipped built-in model, on real Landslide4Sense patches.

`bench/run.py` measures reduced precision on untrained networks, which only compares number formats.
This script asks the question that decides an engine default: how much does the *trained* built-in
model's mask change, against fp32 and against the labels? The int8 model is the package that
``python -m landslide_engine quantize`` writes (:func:`landslide_engine.models.quantize.quantize_static`).

    .venv/bin/python bench/precision_builtin.py [L4S_ROOT]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.quantize import accuracy_cost  # noqa: E402
from landslide_engine.h5io import read_l4s_image, read_l4s_mask  # noqa: E402
from landslide_engine.models.catalog import builtin_model_path  # noqa: E402
from landslide_engine.models.package import load_package  # noqa: E402
from landslide_engine.models.quantize import normalised, quantize_static  # noqa: E402


def probabilities(graph: bytes, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    logits = np.concatenate([session.run(None, {name: x[i : i + 8]})[0] for i in range(0, len(x), 8)])
    return (1.0 / (1.0 + np.exp(-logits[:, 0]))).astype(np.float32)


def f1(predicted: np.ndarray, truth: np.ndarray) -> float:
    tp = np.count_nonzero(predicted & truth)
    return 2 * tp / max(1, 2 * tp + np.count_nonzero(predicted & ~truth) + np.count_nonzero(~predicted & truth))


def main(l4s_root: Path) -> None:
    package = load_package(builtin_model_path())
    graph = package.path.read_bytes()
    train_images = sorted((l4s_root / "TrainData" / "img").glob("*.h5"))
    test_images = sorted((l4s_root / "TestData" / "img").glob("*.h5"))
    labelled = normalised(np.stack([read_l4s_image(p) for p in train_images]), package.metadata)
    masks = np.stack(
        [read_l4s_mask(l4s_root / "TrainData" / "mask" / p.name.replace("image", "mask")) for p in train_images]
    ).astype(bool)
    test_patches = np.stack([read_l4s_image(p) for p in test_images])
    unlabelled = normalised(test_patches, package.metadata)
    threshold = package.metadata.threshold
    with tempfile.TemporaryDirectory() as tmp:  # calibrated on TestData, scored on both
        int8 = quantize_static(package, test_patches, Path(tmp) / "int8.onnx").read_bytes()
    print(f"built-in model {package.metadata.name}, threshold {threshold}")
    print("| patches | variant | mean abs prob diff | mask F1 vs fp32 | F1 vs labels |")
    print("|---|---|---|---|---|")
    for label, x, truth in (
        ("TrainData (15, labelled; seen in training)", labelled, masks),
        ("TestData (14, no labels)", unlabelled, None),
    ):
        reference = probabilities(graph, x)
        reduced = probabilities(int8, x)
        cost = accuracy_cost(reference, reduced, threshold)
        f1_fp32 = f"{f1(reference >= threshold, truth):.3f}" if truth is not None else "-"
        f1_int8 = f"{f1(reduced >= threshold, truth):.3f}" if truth is not None else "-"
        print(f"| {label} | fp32 | 0 | 1.000 | {f1_fp32} |")
        print(
            f"| {label} | int8 static (QDQ) | {cost['mean_abs_diff']:.2e} | {cost['mask_f1_vs_fp32']:.3f} | {f1_int8} |"
        )


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "data" / "landslide4sense")
