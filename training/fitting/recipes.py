"""The two training recipes: the Seed paper's, as a faithful preset, and our default.

The Seed paper is the Landslide4Sense study whose 13-model table this project reproduces (Burange, Shinde and
Mutyalwar, arXiv:2507.01123; see the README).

The default changes only things that are standard remedies for this dataset's known problems
(small, unbalanced, regionally clustered): per-band normalization (the DEM band is two orders of
magnitude off the reflectances), dihedral + radiometric augmentation, early stopping on validation
F1 with the best weights kept, a threshold tuned on validation, and bf16 autocast on GPU. The
optimiser, schedule and loss mix stay the Seed's so the two can be compared.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from landslide_engine.errors import InputError


@dataclass(frozen=True)
class Recipe:
    """Hyper-parameters of one training recipe (batch_size is the global batch over all processes)."""

    name: str
    learning_rate: float = 1e-3
    batch_size: int = 16
    epochs: int = 100
    step_size: int = 30
    step_gamma: float = 0.1
    loss: str = "bce-dice"
    pos_weight: float = 5.0
    bce_weight: float = 0.5
    normalize: bool = False
    augment: bool = False
    early_stopping_patience: int | None = None
    tune_threshold: bool = False
    threshold: float = 0.5
    mixed_precision: bool = False

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def with_overrides(self, **overrides: object) -> Recipe:
        """A copy with the non-None ``overrides`` applied (command-line options)."""
        return replace(self, **{key: value for key, value in overrides.items() if value is not None})


SEED = Recipe(name="seed")

DEFAULT = Recipe(
    name="default",
    pos_weight=1.0,
    normalize=True,
    augment=True,
    early_stopping_patience=15,
    tune_threshold=True,
    mixed_precision=True,
)

RECIPES: dict[str, Recipe] = {recipe.name: recipe for recipe in (SEED, DEFAULT)}


def get_recipe(name: str) -> Recipe:
    """The recipe called ``name``; InputError for an unknown one."""
    try:
        return RECIPES[name]
    except KeyError:
        raise InputError(f"--recipe {name!r}: expected one of {', '.join(RECIPES)}") from None
