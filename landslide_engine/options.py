"""The choices every front end offers (CLI, Processing Toolbox, dock), listed once.

Each list is imported by the CLI's argument parser, the QGIS algorithms and the dock, so
that they cannot drift apart. This module imports nothing: QGIS builds its parameter
lists from it even when rasterio or an inference runtime is missing from its Python.
"""

from __future__ import annotations

# where the model runs: auto picks a CUDA (or Apple) GPU when one is usable, else the CPU
DEVICES = ("auto", "cpu", "cuda", "mps")
# what runs the model: auto runs .onnx packages with ONNX Runtime and .pt packages with PyTorch
BACKENDS = ("auto", "onnx", "torch")
# the number format of the model's arithmetic: auto (int8 on the CPU where the model has an int8 version, as the
# built-in has; else fp32), fp32, int8 (the model's int8 version: ONNX Runtime on the CPU), bf16/fp16 (torch backend)
PRECISIONS = ("auto", "fp32", "int8", "bf16", "fp16")
# auto: the built-in model's int8 version kept the pooled cross-validated F1 of fp32 (0.7072 both; folds -0.004 to
# +0.012) at 1.9x its speed on the CPU (MODEL_CARD.md, "Number format on the CPU"); on a GPU, fp32
DEFAULT_PRECISION = "auto"
# the measured cost of each number format, so an analyst chooses knowing it (CLI help, Toolbox help, dock tooltip)
PRECISION_HELP = (
    "number format of the model: auto (default: on the CPU the model's int8 version where it has one, as the "
    "built-in model has; else fp32); fp32; int8 (the model's int8 version, NAME.int8.onnx beside it, written by "
    "`python -m landslide_engine quantize`; CPU only); bf16 (.pt models: fast on CPUs with AVX-512 BF16/AMX and "
    "on GPUs); fp16 (.pt models, GPU only). Measured against fp32: the built-in model's int8 version kept its "
    "cross-validated pooled F1 (0.707) at 1.9x the speed (MODEL_CARD.md); bf16 on random-weight models, "
    "probabilities within 1e-3 on average, mask F1 0.95-0.9995 (bench/RESULTS.md)"
)
# how the Sentinel-2 files store reflectance: auto (read from the scene, landslide_engine.scale_detection), ESA
# digital numbers (x 10000), x 1000 (ARCSI and others), 0-1 floats; the default first
REFLECTANCE_SCALES = ("auto", "l1c", "x1000", "0-1")
REFLECTANCE_SCALE_HELP = (
    "scale of the Sentinel-2 values: auto (default: read from the scene's land pixels, refused when it cannot "
    "tell), l1c (ESA digital numbers, reflectance x 10000), x1000 (reflectance x 1000, e.g. ARCSI) or 0-1 "
    "(reflectance as floats). A scale that the data contradict by an order of magnitude is refused"
)
# other spellings the CLI has always accepted, and the scale each one means
REFLECTANCE_SCALE_ALIASES = {"x10000": "l1c", "float": "0-1"}
# the DN offset to remove from ESA's digital numbers: auto (read from the metadata, the product date or the values,
# refused when none of them tells), 0 (before processing baseline 04.00, or already removed) or 1000 (baseline 04.00,
# from 2022-01-25); the default first. The CLI also takes any other number of DN
BASELINE_OFFSETS = ("auto", "0", "1000")
BASELINE_OFFSET_HELP = (
    "DN offset removed from ESA's digital numbers: auto (default: from the product's metadata or date, or from "
    "the values; refused when none of them tells), 0 (processing baseline before 04.00, or the offset already "
    "removed, as in Earth Engine's harmonized collection) or 1000 (baseline 04.00 and later, from 2022-01-25)"
)
# the Sen2Cor scene classification (SCL) codes; cloud masks make the chosen ones no data (landslide_engine.cloudmask)
SCL_CLASSES: dict[int, str] = {
    0: "no data",
    1: "saturated or defective",
    2: "dark area pixels",
    3: "cloud shadows",
    4: "vegetation",
    5: "not vegetated",
    6: "water",
    7: "unclassified",
    8: "cloud medium probability",
    9: "cloud high probability",
    10: "thin cirrus",
    11: "snow",
}
# cloud shadows, clouds (medium and high probability), thin cirrus and snow
DEFAULT_MASK_CLASSES: tuple[int, ...] = (3, 8, 9, 10, 11)

# the smallest landslide polygon kept by default, m2: two 10 m pixels. Dropping single pixels removed 62 of the 221
# polygons (28 %, all false alarms) on the Aberystwyth scene and no pixel F1 on the labelled patches; see the
# README's "Minimum mapping unit" and bench/min_area.py
DEFAULT_MIN_AREA_M2 = 200.0
