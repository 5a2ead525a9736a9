"""The model zoo: every architecture of the Seed paper's comparison, plus small variants for the built-in model.

The Seed paper is the study this project grew from (Burange, Shinde and Mutyalwar, arXiv:2507.01123; see the README).

The Seed paper trained 13 segmentation models on Landslide4Sense: eleven U-Nets with different encoders,
a DeepLabV3+ and the plain U-Net; U-Net/ResNet34 was best (F1 0.747). Each row is a :class:`ModelSpec`.
The paper's scores are recorded only where we know them; unknown numbers are ``None``, never guessed.

Architectures are built without pre-trained weights (``encoder_weights=None``): ImageNet weights expect 3 RGB
channels, these models take the 14 Landslide4Sense bands (or a declared subset), and nothing is downloaded.
A model package stores ``architecture``, ``encoder`` and ``architecture_options``, and
:func:`build_architecture` rebuilds exactly the same module from them.

The specs are plain data and import without torch (an analyst's Python may run ``.onnx`` models with onnxruntime
alone and still list and validate them); only building a network imports torch and segmentation-models-pytorch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from landslide_engine.errors import InputError

if TYPE_CHECKING:
    from torch import nn

ARCHITECTURES = ("unet", "deeplabv3plus", "plain_unet")
"""Architecture names a model package may declare."""

PLAIN_UNET_DEFAULT_WIDTH = 64


@dataclass(frozen=True)
class ModelSpec:
    """One entry of the zoo: how to build it and, for the paper's rows, the paper's test scores.

    ``in_paper`` is False for the compact variants added for the built-in model; their metrics are always None.
    ``options`` holds architecture options (only ``base_width`` for ``plain_unet``).
    """

    name: str
    architecture: str
    encoder: str | None
    in_paper: bool
    f1: float | None = None
    precision: float | None = None
    recall: float | None = None
    iou: float | None = None
    options: Mapping[str, int] = field(default_factory=dict)
    note: str = ""

    @property
    def paper_metrics(self) -> dict[str, float | None]:
        """The paper's scores as a dict (values None where unknown)."""
        return {"f1": self.f1, "precision": self.precision, "recall": self.recall, "iou": self.iou}


_PAPER_UNET_ENCODERS = (
    "resnet34",
    "vgg16",
    "efficientnet-b0",
    "resnext50_32x4d",
    "se_resnet50",
    "densenet121",
    "se_resnext50_32x4d",
    "inceptionv4",
    "inceptionresnetv2",
    "mobilenet_v2",
    "mit_b1",
)
_KNOWN_PAPER_F1: dict[str, float] = {"unet_resnet34": 0.747}


def _paper_specs() -> list[ModelSpec]:
    specs = [
        ModelSpec(f"unet_{encoder}", "unet", encoder, in_paper=True, f1=_KNOWN_PAPER_F1.get(f"unet_{encoder}"))
        for encoder in _PAPER_UNET_ENCODERS
    ]
    specs.append(ModelSpec("deeplabv3plus_resnet50", "deeplabv3plus", "resnet50", in_paper=True))
    specs.append(
        ModelSpec("unet_plain", "plain_unet", None, in_paper=True, options={"base_width": PLAIN_UNET_DEFAULT_WIDTH})
    )
    return specs


def _compact_specs() -> list[ModelSpec]:
    note = "not in the paper: a compact variant for a small, fast built-in model"
    return [
        ModelSpec("unet_resnet18", "unet", "resnet18", in_paper=False, note=note),
        ModelSpec("unet_plain_w32", "plain_unet", None, in_paper=False, options={"base_width": 32}, note=note),
        ModelSpec("unet_plain_w16", "plain_unet", None, in_paper=False, options={"base_width": 16}, note=note),
    ]


MODEL_SPECS: dict[str, ModelSpec] = {spec.name: spec for spec in _paper_specs() + _compact_specs()}
"""Every buildable model by name: the 13 rows of the paper first, then the compact variants."""

PAPER_MODEL_NAMES: tuple[str, ...] = tuple(name for name, spec in MODEL_SPECS.items() if spec.in_paper)


def _is_transformer_encoder(encoder: str) -> bool:
    return encoder.startswith("mit_")


def build_architecture(
    architecture: str, encoder: str | None, in_channels: int, options: Mapping[str, int] | None = None
) -> nn.Module:
    """Build an untrained network with ``in_channels`` inputs and one output logit at the input resolution.

    Raises InputError for an unknown architecture, encoder or option, since these come from model files.
    """
    options = dict(options or {})
    if in_channels < 1:
        raise InputError(f"in_channels must be at least 1, got {in_channels}")
    if architecture == "plain_unet":
        unknown = set(options) - {"base_width"}
        if unknown:
            raise InputError(f"architecture plain_unet: unknown option(s) {sorted(unknown)}")
        if encoder is not None:
            raise InputError(f"architecture plain_unet has no encoder, got encoder {encoder!r}")
        from landslide_engine.models.plain_unet import PlainUNet

        return PlainUNet(in_channels, base_width=int(options.get("base_width", PLAIN_UNET_DEFAULT_WIDTH)))
    if architecture not in ARCHITECTURES:
        raise InputError(f"unknown architecture {architecture!r}; expected one of {', '.join(ARCHITECTURES)}")
    if options:
        raise InputError(f"architecture {architecture} takes no options, got {sorted(options)}")
    if not encoder:
        raise InputError(f"architecture {architecture} needs an encoder")

    from landslide_engine.models.torch_compat import import_smp

    smp = import_smp()
    if encoder not in smp.encoders.get_encoder_names():
        raise InputError(f"encoder {encoder!r} is not available in segmentation-models-pytorch {smp.__version__}")
    factory = smp.Unet if architecture == "unet" else smp.DeepLabV3Plus
    if _is_transformer_encoder(encoder):
        from landslide_engine.models.input_projection import InputProjection

        return InputProjection(in_channels, 3, factory(encoder, encoder_weights=None, in_channels=3, classes=1))
    return factory(encoder, encoder_weights=None, in_channels=in_channels, classes=1)


def create_model(name: str, in_channels: int = 14) -> nn.Module:
    """Build the zoo model ``name`` (a key of :data:`MODEL_SPECS`), untrained, with ``in_channels`` inputs."""
    spec = MODEL_SPECS.get(name)
    if spec is None:
        raise InputError(f"unknown model architecture {name!r}; known: {', '.join(MODEL_SPECS)}")
    return build_architecture(spec.architecture, spec.encoder, in_channels, spec.options)
