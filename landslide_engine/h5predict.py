"""Predict on Landslide4Sense ``.h5`` patches, the Seed's own flow, done right.

For every patch and every model this writes ``<out>/<model name>/<patch stem>.npy`` (the float32 (128, 128)
probabilities, readable by ``np.load``) and ``<stem>.png`` with three panels: true colour from B4, B3, B2 (the
Seed showed B1, B2, B3, which is not true colour), the probability, and the thresholded mask over true colour.
All inputs and models are checked before anything is written; each file is written atomically, and a cancelled
run removes what it wrote.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from landslide_engine.bands import L4S_BANDS
from landslide_engine.errors import Cancelled, InputError, ModelError
from landslide_engine.figures import three_panel_figure, true_colour
from landslide_engine.h5io import read_l4s_image
from landslide_engine.notices import Warn, Warnings
from landslide_engine.options import DEFAULT_PRECISION
from landslide_engine.targets import atomic_output, check_output_folder

_CHUNK_PATCHES = 64

Progress = Callable[[float, str], None]


def predict_h5(
    paths: Sequence[str | Path],
    models: Sequence[str | Path],
    out_dir: str | Path,
    backend: str = "auto",
    device: str = "auto",
    batch_size: int = 16,
    progress: Progress | None = None,
    cancelled: Callable[[], bool] | None = None,
    precision: str = DEFAULT_PRECISION,
    skip_unusable_models: bool = False,
    warn: Warn | None = None,
) -> list[Path]:
    """Predict every patch in ``paths`` with every model in ``models``; returns the files written.

    ``precision`` is passed to :func:`~landslide_engine.models.backends.create_runner` (auto: int8 on the CPU where the
    model has an int8 version; bf16/fp16: torch only).

    ``models`` are catalog references (names, paths, or "builtin"). Raises InputError for a malformed patch, two
    patches with the same file name, or an unusable model, before writing anything; Cancelled when ``cancelled()``
    turns true, after removing this run's files. With ``skip_unusable_models`` (the "all models" mode) a model
    that cannot run is left out with a warning through ``warn`` instead, as long as one model can run.
    """
    patches = [Path(p) for p in paths]
    if not patches:
        raise InputError("no .h5 patch given")
    if not models:
        raise InputError("no model given")
    out_dir = check_output_folder(out_dir)
    _check_unique_stems(patches)
    for path in patches:
        read_l4s_image(path)
    notices = Warnings(warn)
    runs = _ModelRuns(models, skip_unusable_models, notices)
    created = [folder for folder in [out_dir, *(out_dir / name for name in runs.folders)] if not folder.exists()]
    written: list[Path] = []
    total = len(patches) * len(runs.packages)
    try:
        for model_index, (runner, folder) in enumerate(runs.runners(backend, device, batch_size, precision)):
            _raise_if_cancelled(cancelled)
            metadata = runner.metadata
            band_index = [L4S_BANDS.index(band) for band in metadata.bands]
            _report(
                progress,
                100.0 * model_index / total * len(patches),
                f"{metadata.name}: {runner.backend} on {runner.device}",
            )
            for start in range(0, len(patches), _CHUNK_PATCHES):
                chunk = patches[start : start + _CHUNK_PATCHES]
                images = np.stack([read_l4s_image(path) for path in chunk])
                probabilities = runner.predict(images[:, band_index])
                for offset, (path, image, probability) in enumerate(zip(chunk, images, probabilities, strict=True)):
                    _raise_if_cancelled(cancelled)
                    written += _write_patch_outputs(
                        out_dir / folder / path.stem, image, probability, metadata.name, metadata.threshold
                    )
                    done = model_index * len(patches) + start + offset + 1
                    _report(progress, 100.0 * done / total, f"{metadata.name}: {path.name}")
    except BaseException:
        for path in written:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        for made in reversed(created):  # folders this run made, once empty again
            with contextlib.suppress(OSError):
                made.rmdir()
        raise
    return written


class _ModelRuns:
    """The packages of a run and their output folders; in "all models" mode, unusable ones are left out."""

    def __init__(self, models: Sequence[str | Path], skip_unusable: bool, warn: Warnings) -> None:
        from landslide_engine.models.catalog import resolve_model
        from landslide_engine.models.package import load_package

        self._skip, self._warn = skip_unusable, warn
        self.packages = []
        for ref in models:
            try:
                self.packages.append(load_package(resolve_model(ref)))
            except ModelError as exc:
                self._left_out(exc)
        if not self.packages:
            raise ModelError("none of the models can run (see the warnings)")
        self.folders = _model_folders([package.metadata.name for package in self.packages])

    def _left_out(self, exc: ModelError) -> None:
        if not self._skip:
            raise exc
        self._warn(f"model left out: {exc}")

    def runners(self, backend: str, device: str, batch_size: int, precision: str) -> Iterator[tuple[Any, str]]:
        """A runner and its folder for each package that can run, created one at a time (one in memory)."""
        from landslide_engine.models.backends import create_runner

        ran = 0
        for package, folder in zip(self.packages, self.folders, strict=True):
            try:
                runner = create_runner(
                    package, backend=backend, device=device, batch_size=batch_size, precision=precision
                )
            except ModelError as exc:
                self._left_out(exc)
                continue
            ran += 1
            yield runner, folder
        if not ran:
            raise ModelError("none of the models can run (see the warnings)")


def patch_figure(image: np.ndarray, probability: np.ndarray, threshold: float, title: str):
    """The three-panel figure of one (14, H, W) patch, its mask being ``probability >= threshold``."""
    mask = probability >= threshold
    overlay_title = f"p ≥ {threshold:g}: {100.0 * mask.mean():.1f} % of pixels"
    return three_panel_figure(true_colour(image), probability, mask, title, overlay_title)


def _write_patch_outputs(
    stem_path: Path, image: np.ndarray, probability: np.ndarray, model_name: str, threshold: float
) -> list[Path]:
    npy_path = stem_path.with_suffix(".npy")
    png_path = stem_path.with_suffix(".png")
    with atomic_output(npy_path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, probability.astype(np.float32))
    figure = patch_figure(image, probability, threshold, f"{stem_path.name} · {model_name}")
    with atomic_output(png_path) as tmp, open(tmp, "wb") as handle:
        figure.savefig(handle, format="png")
    return [npy_path, png_path]


def _check_unique_stems(paths: list[Path]) -> None:
    seen: dict[str, Path] = {}
    for path in paths:
        if path.stem in seen and seen[path.stem].resolve() != path.resolve():
            raise InputError(f"{seen[path.stem]} and {path} share the name {path.stem}; their outputs would collide")
        seen[path.stem] = path
    if len(seen) != len(paths):
        raise InputError(f"a patch is listed more than once among {len(paths)} inputs")


def _model_folders(names: list[str]) -> list[str]:
    """One output folder per model, named after it; two models with the same name would overwrite each other."""
    folders = [re.sub(r"[^A-Za-z0-9._-]+", "_", name) for name in names]
    duplicated = sorted({f for f in folders if folders.count(f) > 1})
    if duplicated:
        raise InputError(f"two models share the name {duplicated[0]}; give each model once")
    return folders


def _report(progress: Progress | None, percent: float, message: str) -> None:
    if progress is not None:
        progress(percent, message)


def _raise_if_cancelled(cancelled: Callable[[], bool] | None) -> None:
    if cancelled is not None and cancelled():
        raise Cancelled("prediction on .h5 patches was cancelled")
