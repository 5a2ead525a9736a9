"""Import guard for segmentation-models-pytorch on CPU-only torch.

smp imports timm, which imports torchvision. On PyPI the only torchvision that
matches recent CPU torch wheels is a CUDA build whose compiled ops do not load,
and torchvision's import then dies registering meta/autograd kernels for ops
that do not exist ("operator torchvision::nms does not exist"). We never use
those detection ops (NMS, RoIAlign, deformable conv), so when, and only when,
that happens we retry the import with the two registration modules replaced by
empty ones. Nothing in site-packages is modified.
"""

from __future__ import annotations

import os
import sys
import types

_PATCHED_MODULES = ("torchvision._meta_registrations", "torchvision._autograd_registrations")


def import_torchvision_safely() -> None:
    """Import torchvision, working around missing compiled ops; no-op if it is absent."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if "torchvision" in sys.modules:
        return
    try:
        import torchvision
    except ImportError:
        return
    except RuntimeError as exc:
        if "torchvision::" not in str(exc):
            raise
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        for name in _PATCHED_MODULES:
            sys.modules[name] = types.ModuleType(name)
        import torchvision  # noqa: F401


def import_smp():
    """Return the ``segmentation_models_pytorch`` module, importable on CPU-only torch."""
    import_torchvision_safely()
    import segmentation_models_pytorch as smp

    return smp
