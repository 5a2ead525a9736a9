"""Sample patches for the benchmarks, and what reduced precision costs in accuracy.

The *static* QDQ int8 graph comes from :mod:`landslide_engine.models.quantize`, so the benchmark measures exactly
what ``python -m landslide_engine quantize`` writes; the *dynamic* one, which the engine does not offer (it was
slower than fp32 on the benchmark CPU), is made here for comparison. Accuracy is measured
against the fp32 graph on the same patches: the largest and mean absolute probability difference, how often
the thresholded masks agree, and the F1 of the reduced-precision mask taking the fp32 mask as truth.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

SAMPLE_PATCHES = 32


def quantize_dynamic_graph(graph: bytes) -> bytes:
    """Weights int8, activations quantized on the fly (ConvInteger)."""
    from onnxruntime import quantization

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(graph)
        quantization.quantize_dynamic(src, dst, weight_type=quantization.QuantType.QInt8)
        return dst.read_bytes()


def sample_patches(l4s_root: Path | None, seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """Calibration and evaluation patches (n, 14, 128, 128) in l4s units, and where they came from.

    Real Landslide4Sense patches when the data is there (value ranges matter for int8 calibration):
    calibration from ``TrainData``, evaluation from ``TestData``, so the ranges are not fitted to the test.
    Else Gaussian noise around typical l4s values.
    """
    from landslide_engine.h5io import read_l4s_image

    if l4s_root is not None:
        train = sorted((l4s_root / "TrainData" / "img").glob("*.h5"))[:SAMPLE_PATCHES]
        test = sorted((l4s_root / "TestData" / "img").glob("*.h5"))[:SAMPLE_PATCHES]
        if train and test:
            calibration = np.stack([read_l4s_image(f) for f in train])
            evaluation = np.stack([read_l4s_image(f) for f in test])
            return calibration, evaluation, f"Landslide4Sense patches ({len(train)} train, {len(test)} test)"
    rng = np.random.default_rng(seed)
    noise = (1.0 + 0.4 * rng.standard_normal((2 * 16, 14, 128, 128))).astype(np.float32)
    return noise[:16], noise[16:], "synthetic noise patches (no Landslide4Sense data found)"


def comparison_threshold(reference: np.ndarray, threshold: float) -> float:
    """``threshold``, or the fp32 probabilities' 90th percentile when ``threshold`` marks (almost) none or all.

    An untrained network's probabilities sit in a narrow band, so the model's 0.5 may mask nothing and mask
    agreement would say nothing; at the 90th percentile one pixel in ten is "landslide", as in a real scene.
    """
    share = float(np.mean(reference >= threshold))
    return threshold if 0.01 <= share <= 0.99 else float(np.quantile(reference, 0.9))


def accuracy_cost(reference: np.ndarray, reduced: np.ndarray, threshold: float) -> dict[str, float]:
    """How far ``reduced`` probabilities are from the fp32 ``reference``, and what that does to the mask."""
    diff = np.abs(reference.astype(np.float64) - reduced.astype(np.float64))
    ref_mask, red_mask = reference >= threshold, reduced >= threshold
    tp = int(np.count_nonzero(ref_mask & red_mask))
    fp = int(np.count_nonzero(~ref_mask & red_mask))
    fn = int(np.count_nonzero(ref_mask & ~red_mask))
    f1 = 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else 1.0
    return {
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "mask_agreement": float(np.mean(ref_mask == red_mask)),
        "mask_f1_vs_fp32": float(f1),
        "fp32_mask_share": float(np.mean(ref_mask)),
        "threshold": float(threshold),
    }
