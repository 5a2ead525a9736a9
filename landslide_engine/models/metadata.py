"""The metadata of a model package: what the network is and exactly what input it expects, validated.

Kept apart from the weights (``package.py``) and free of torch and ONNX imports, so that an analyst's Python with
only onnxruntime can read, list and validate packages: the metadata says which Landslide4Sense bands in which order,
their scaling ("l4s": raw value / fixed divisor), the normalisation mean/std applied on top, the tile size, the
default threshold, and which missing bands the engine may fill (and with what value). It is validated whenever it is
built or loaded, and metadata that does not fit is refused with one line saying what differs.
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from landslide_engine.bands import L4S_BANDS
from landslide_engine.errors import ModelError
from landslide_engine.models.registry import ARCHITECTURES, MODEL_SPECS

SCHEMA_VERSION = 1
"""Version of the metadata schema this engine writes and reads; bump it on any incompatible change."""

INPUT_SCALINGS = ("l4s",)
_REQUIRED_FIELDS = ("name", "architecture", "encoder", "bands", "mean", "std")

# Bounds on what a package may ask of the machine. A package is a downloaded file, and these numbers size
# memory before anything else can check it.
MAX_TILE_SIZE = 1024
"""Largest tile: one patch of 14 float32 bands is 58 MB at 1024² and a U-Net holds tens of activations of that
size per patch in a batch; Landslide4Sense patches are 128²."""
OPTION_BOUNDS: dict[str, tuple[int, int]] = {
    "base_width": (1, 128),  # weights grow with its square: 64 is the paper's U-Net (31 M parameters), 128 is 4x
    "spectral_indices": (0, 1),  # off or on
    "min_slope_deg": (0, 90),  # a slope in degrees
}
MAX_NAME_LENGTH = 64
_NAME = re.compile(r"[^\W][\w.+ -]*", re.UNICODE)
"""A model name becomes a folder name and terminal text: word characters, dot, plus, hyphen and spaces, not
starting with a dot or a space (so never ``.`` or ``..``), no path separator and no control character."""


def _is_plain_name(text: str) -> bool:
    return len(text) <= MAX_NAME_LENGTH and _NAME.fullmatch(text) is not None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(kw_only=True)
class ModelMetadata:
    """What a model package declares about its network and the input it expects.

    ``bands`` may be any subset of the 14 Landslide4Sense bands, in the order the network takes them; ``mean`` and
    ``std`` normalise each of them (in l4s units). ``fillable_bands`` maps a declared band to the l4s value the engine
    may put in when the input lacks it (e.g. B10 for L2A products); a missing band not listed there is an error.
    """

    name: str
    architecture: str
    encoder: str | None
    bands: list[str]
    mean: list[float]
    std: list[float]
    input_scaling: str = "l4s"
    tile_size: int = 128
    threshold: float = 0.5
    fillable_bands: dict[str, float] = field(default_factory=dict)
    training_data: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    architecture_options: dict[str, int] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        problems = self._problems()
        if problems:
            raise ModelError("invalid model metadata: " + "; ".join(problems))

    @property
    def in_channels(self) -> int:
        """Number of input channels of the network: one per declared band."""
        return len(self.bands)

    @classmethod
    def from_spec(cls, spec_name: str, **values: Any) -> ModelMetadata:
        """Metadata for zoo model ``spec_name`` (architecture, encoder and options filled in from the registry)."""
        spec = MODEL_SPECS.get(spec_name)
        if spec is None:
            raise ModelError(f"unknown model architecture {spec_name!r}; known: {', '.join(MODEL_SPECS)}")
        values.setdefault("name", spec.name)
        return cls(
            architecture=spec.architecture, encoder=spec.encoder, architecture_options=dict(spec.options), **values
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict; :meth:`from_dict` reads it back."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, source: str = "model metadata") -> ModelMetadata:
        """Validate ``data`` (as read from a package) and build the metadata; InputError naming ``source`` if not."""
        if not isinstance(data, Mapping):
            raise ModelError(f"{source}: metadata is not a JSON object")
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            found = "no schema_version" if version is None else f"schema version {version!r}"
            raise ModelError(f"{source}: metadata has {found}; this engine reads schema version {SCHEMA_VERSION}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ModelError(f"{source}: unknown metadata key(s) {unknown} for schema version {SCHEMA_VERSION}")
        missing = sorted(f.name for f in fields(cls) if f.name in _REQUIRED_FIELDS and f.name not in data)
        if missing:
            raise ModelError(f"{source}: metadata lacks required key(s) {missing}")
        try:
            return cls(**copy.deepcopy(dict(data)))
        except ModelError as exc:
            raise ModelError(f"{source}: {exc}") from None

    def _problems(self) -> list[str]:
        problems: list[str] = []
        if self.schema_version != SCHEMA_VERSION:
            problems.append(f"schema version {self.schema_version!r}, expected {SCHEMA_VERSION}")
        if not isinstance(self.name, str) or not self.name.strip():
            problems.append("name must be a non-empty string")
        elif not _is_plain_name(self.name):
            problems.append(
                f"name {ascii(self.name)[:80]} is not a plain name (letters, digits, '._+-' and spaces, at most "
                f"{MAX_NAME_LENGTH} characters, no leading dot): it becomes a folder name"
            )
        problems += self._architecture_problems()
        problems += self._band_problems()
        if self.input_scaling not in INPUT_SCALINGS:
            problems.append(f"input_scaling {self.input_scaling!r} is not supported (expected one of {INPUT_SCALINGS})")
        problems += self._tile_problems()
        if not _is_number(self.threshold) or not 0 < self.threshold < 1:
            problems.append(f"threshold must be a number between 0 and 1, got {self.threshold!r}")
        for key in ("training_data", "metrics"):
            value = getattr(self, key)
            if not isinstance(value, dict):
                problems.append(f"{key} must be a JSON object")
                continue
            try:
                json.dumps(value, allow_nan=False)
            except (TypeError, ValueError, RecursionError) as exc:
                problems.append(f"{key} is not plain JSON ({type(exc).__name__})")
        return problems

    def _tile_problems(self) -> list[str]:
        if not isinstance(self.tile_size, int) or isinstance(self.tile_size, bool) or self.tile_size <= 0:
            return [f"tile_size must be a positive integer, got {self.tile_size!r}"]
        if self.tile_size % 32:
            return [f"tile_size {self.tile_size} is not a multiple of 32"]
        if self.tile_size > MAX_TILE_SIZE:
            return [f"tile_size {self.tile_size} is above {MAX_TILE_SIZE} (memory per patch)"]
        return []

    def _architecture_problems(self) -> list[str]:
        if self.architecture not in ARCHITECTURES:
            return [f"unknown architecture {self.architecture!r} (expected one of {', '.join(ARCHITECTURES)})"]
        problems = []
        if self.architecture == "plain_unet" and self.encoder is not None:
            problems.append(f"architecture plain_unet has no encoder, got {self.encoder!r}")
        if isinstance(self.encoder, str) and not _is_plain_name(self.encoder):
            problems.append(f"encoder {ascii(self.encoder)[:80]} is not a plain name")
        if self.architecture != "plain_unet" and (not isinstance(self.encoder, str) or not self.encoder):
            problems.append(f"architecture {self.architecture} needs an encoder name")
        options = self.architecture_options
        if not isinstance(options, dict) or not all(
            isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) for k, v in options.items()
        ):
            problems.append("architecture_options must map names to integers")
            return problems
        for key, value in options.items():
            if key not in OPTION_BOUNDS:
                problems.append(f"unknown architecture option {key!r} (known: {', '.join(OPTION_BOUNDS)})")
                continue
            low, high = OPTION_BOUNDS[key]
            if not low <= value <= high:
                problems.append(f"architecture option {key} {value} is outside {low}..{high}")
        return problems

    def _band_problems(self) -> list[str]:
        bands = self.bands
        if not isinstance(bands, list) or not bands or not all(isinstance(b, str) for b in bands):
            return ["bands must be a non-empty list of band names"]
        problems = []
        unknown = [b for b in bands if b not in L4S_BANDS]
        if unknown:
            problems.append(f"unknown band name(s) {unknown} (expected Landslide4Sense names B1..B14)")
        duplicated = sorted({b for b in bands if bands.count(b) > 1})
        if duplicated:
            problems.append(f"band(s) {duplicated} listed more than once")
        for key in ("mean", "std"):
            values = getattr(self, key)
            if not isinstance(values, list) or not all(_is_number(v) for v in values):
                problems.append(f"{key} must be a list of finite numbers")
            elif len(values) != len(bands):
                problems.append(f"{key} has {len(values)} values but bands has {len(bands)}")
        if isinstance(self.std, list) and any(_is_number(v) and v <= 0 for v in self.std):
            problems.append("std values must be positive")
        fillable = self.fillable_bands
        if not isinstance(fillable, dict) or not all(_is_number(v) for v in fillable.values()):
            problems.append("fillable_bands must map band names to finite l4s values")
        else:
            strangers = sorted(set(fillable) - set(bands))
            if strangers:
                problems.append(f"fillable band(s) {strangers} are not among the model's bands")
        return problems
