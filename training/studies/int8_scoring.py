"""What int8 costs a cross-validation fold's network, run as the engine runs a shipped model.

The engine's int8 models are written by :func:`landslide_engine.models.quantize.quantize_static` (the
``quantize`` command) from an ``.onnx`` package, calibrated on patches chosen by
:func:`~landslide_engine.models.quantize.calibration_choice`, and run by the engine's ONNX Runtime runner. Each
fold's network goes through exactly that path: exported as a package, quantized on its own training patches
(never the fold's test patches), and both packages, fp32 and int8, run by :func:`create_runner` on the CPU.
So the F1 difference measured here is the one an analyst would see from choosing int8 over fp32.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from landslide_engine.bands import L4S_BANDS
from landslide_engine.models.backends import create_runner
from landslide_engine.models.package import ModelMetadata, export_onnx, load_package
from landslide_engine.models.quantize import calibration_choice, quantize_static
from landslide_engine.scores import Confusion
from training.data.smalldata import PatchArrays


@dataclass
class Int8Scores:
    """fp32 and int8 confusion against the labels, per fold and pooled, and how far int8 strays from fp32."""

    fold_fp32: list[Confusion] = field(default_factory=list)
    fold_int8: list[Confusion] = field(default_factory=list)
    agreement: Confusion = field(default_factory=Confusion)  # the int8 mask scored against the fp32 mask
    abs_diff_sum: float = 0.0
    pixels: int = 0

    def add_fold(self, fp32: np.ndarray, int8: np.ndarray, threshold: float, masks: np.ndarray) -> None:
        """Score one fold's fp32 and int8 probabilities (N, H, W) at the fold's ``threshold``."""
        self.fold_fp32.append(Confusion.from_masks(fp32 >= threshold, masks))
        self.fold_int8.append(Confusion.from_masks(int8 >= threshold, masks))
        self.agreement = self.agreement + Confusion.from_masks(int8 >= threshold, fp32 >= threshold)
        self.abs_diff_sum += float(np.abs(int8.astype(np.float64) - fp32).sum())
        self.pixels += fp32.size

    def summary(self) -> dict:
        """The JSON row: pooled F1 of each format, the per-fold F1, mask agreement and mean probability gap."""
        pooled_fp32, pooled_int8 = sum(self.fold_fp32, Confusion()), sum(self.fold_int8, Confusion())
        return {
            "f1_fp32": pooled_fp32.scores()["f1"],
            "f1_int8": pooled_int8.scores()["f1"],
            "fold_f1_fp32": [c.scores()["f1"] for c in self.fold_fp32],
            "fold_f1_int8": [c.scores()["f1"] for c in self.fold_int8],
            "mask_f1_int8_vs_fp32": self.agreement.scores()["f1"],
            "mean_abs_prob_diff": self.abs_diff_sum / max(1, self.pixels),
            "confusion_fp32": asdict(pooled_fp32),
            "confusion_int8": asdict(pooled_int8),
        }


def engine_probabilities(
    network: torch.nn.Module, metadata: ModelMetadata, train: PatchArrays, test: PatchArrays
) -> tuple[np.ndarray, np.ndarray]:
    """fp32 and int8 probabilities of ``test`` from a fold's ``network`` (package ``metadata``), exported,
    quantized (calibrated on ``train``) and run by the engine."""
    band_index = [L4S_BANDS.index(b) for b in metadata.bands]
    calibration = train.images[calibration_choice(len(train.images))][:, band_index]
    with tempfile.TemporaryDirectory() as tmp:
        fp32_path = export_onnx(network, metadata, Path(tmp) / "fold.onnx")
        int8_path = quantize_static(load_package(fp32_path), calibration, Path(tmp) / "fold.int8.onnx")
        x = test.images[:, band_index]
        fp32, int8 = (create_runner(path, backend="onnx", device="cpu").predict(x) for path in (fp32_path, int8_path))
    return fp32, int8
