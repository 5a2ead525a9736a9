"""The model zoo: the paper's 13 rows, the compact variants, and that each builds for 14 bands → 1 logit."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from landslide_engine.errors import InputError
from landslide_engine.models.registry import MODEL_SPECS, PAPER_MODEL_NAMES, build_architecture, create_model

PAPER_ROWS = {
    "unet_resnet34",
    "unet_vgg16",
    "unet_efficientnet-b0",
    "unet_resnext50_32x4d",
    "unet_se_resnet50",
    "unet_densenet121",
    "unet_se_resnext50_32x4d",
    "unet_inceptionv4",
    "unet_inceptionresnetv2",
    "unet_mobilenet_v2",
    "unet_mit_b1",
    "deeplabv3plus_resnet50",
    "unet_plain",
}
LIGHT_MODELS = [
    "unet_resnet34",
    "unet_efficientnet-b0",
    "unet_mobilenet_v2",
    "unet_mit_b1",
    "deeplabv3plus_resnet50",
    "unet_resnet18",
    "unet_plain_w16",
]


def _first_conv(model: nn.Module) -> nn.Conv2d:
    return next(m for m in model.modules() if isinstance(m, nn.Conv2d))


def test_registry_holds_exactly_the_papers_13_rows_plus_marked_variants():
    assert set(PAPER_MODEL_NAMES) == PAPER_ROWS
    extras = [spec for name, spec in MODEL_SPECS.items() if name not in PAPER_ROWS]
    assert extras, "compact variants for the built-in model are expected"
    for spec in extras:
        assert not spec.in_paper
        assert "not in the paper" in spec.note
        assert set(spec.paper_metrics.values()) == {None}


def test_only_known_paper_scores_are_recorded_and_resnet34_is_best():
    best = MODEL_SPECS["unet_resnet34"]
    assert best.f1 == pytest.approx(0.747)
    known_f1 = {name: spec.f1 for name, spec in MODEL_SPECS.items() if spec.f1 is not None}
    assert max(known_f1, key=known_f1.get) == "unet_resnet34"


@pytest.mark.parametrize("name", LIGHT_MODELS)
def test_light_models_map_14_bands_to_one_logit_at_input_size(name):
    model = create_model(name, in_channels=14).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 14, 128, 128))
    assert out.shape == (2, 1, 128, 128)
    assert torch.isfinite(out).all()


def test_every_model_constructs_with_14_input_channels():
    """Construction only (no forward pass), so that the heavy encoders stay cheap on a CPU runner."""
    for name in MODEL_SPECS:
        model = create_model(name, in_channels=14)
        assert _first_conv(model).in_channels == 14, name


def test_mit_b1_gets_a_1x1_projection_from_the_bands_to_3_channels():
    projection = _first_conv(create_model("unet_mit_b1", in_channels=11))
    assert (projection.in_channels, projection.out_channels, projection.kernel_size) == (11, 3, (1, 1))


def test_band_subsets_change_the_input_width():
    model = create_model("unet_plain_w16", in_channels=11).eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 11, 64, 64)).shape == (1, 1, 64, 64)


def test_plain_unet_width_option_scales_the_network():
    small = sum(p.numel() for p in create_model("unet_plain_w16").parameters())
    larger = sum(p.numel() for p in create_model("unet_plain_w32").parameters())
    assert larger > 3 * small


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("transformer", "resnet34", 14, {}), "unknown architecture"),
        (("unet", "no_such_encoder", 14, {}), "no_such_encoder"),
        (("unet", None, 14, {}), "needs an encoder"),
        (("plain_unet", None, 14, {"depth": 5}), "depth"),
        (("plain_unet", "resnet34", 14, {}), "has no encoder"),
    ],
)
def test_bad_architecture_descriptions_are_refused(args, message):
    with pytest.raises(InputError, match=message):
        build_architecture(*args)


def test_unknown_model_name_is_refused_naming_it():
    with pytest.raises(InputError, match="unet_resnet999"):
        create_model("unet_resnet999")
