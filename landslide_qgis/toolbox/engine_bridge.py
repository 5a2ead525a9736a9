"""How algorithms talk to the engine: callbacks, errors and model choices.

The engine reports progress as ``progress(percent, message)``, warnings as ``warn(message)``,
what it found about the inputs as ``info(message)``
and polls ``cancelled()``; QGIS offers a ``QgsProcessingFeedback``. The engine raises
``InputError`` (and its subclasses) with one actionable line, ``Cancelled`` when
asked to stop, and ``ImportError`` when QGIS's Python lacks a package; library
failures that escaped the engine are classified by
``landslide_engine.errors.classify``. Processing expects a
``QgsProcessingException``. This module is the only place these are translated (an option named by its
command-line flag is named by its QGIS parameter: ``engine_request.qgis_wording``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

from qgis.core import QgsProcessingException, QgsProcessingFeedback

from landslide_engine.errors import Cancelled, InputError, classify, one_line
from landslide_qgis import dependencies, settings
from landslide_qgis.engine_request import qgis_wording

CANCELLED_MESSAGE = "Cancelled: nothing was written."


def engine_callbacks(feedback: QgsProcessingFeedback) -> tuple[Callable[[float, str], None], Callable[[], bool]]:
    """``(progress, cancelled)`` callbacks for the engine that drive ``feedback``."""
    last_message = [""]

    def progress(percent: float, message: str = "") -> None:
        feedback.setProgress(float(percent))
        if message and message != last_message[0]:  # the engine repeats its stage name for every batch
            last_message[0] = message
            feedback.pushInfo(message)

    return progress, feedback.isCanceled


def engine_info(feedback: QgsProcessingFeedback) -> Callable[[str], None]:
    """The engine's ``info`` callback: what a run found about its inputs (the reflectance scale it read)."""

    def info(message: str) -> None:
        feedback.pushInfo(f"Found: {message}")

    return info


def engine_warn(feedback: QgsProcessingFeedback) -> Callable[[str], None]:
    """The engine's ``warn`` callback: each warning in the processing log, as a warning, when it arises."""

    def warn(message: str) -> None:
        feedback.pushWarning(f"Warning: {qgis_wording(message)}")

    return warn


@contextlib.contextmanager
def engine_errors() -> Iterator[None]:
    """Re-raise the engine's errors as ``QgsProcessingException`` carrying their one-line message."""
    try:
        yield
    except ImportError as exc:
        raise QgsProcessingException(dependencies.missing_message(dependencies.missing_for_import_error(exc))) from exc
    except Exception as exc:
        problem = classify(exc)
        if problem is None:
            raise
        if isinstance(problem, Cancelled):
            raise QgsProcessingException(CANCELLED_MESSAGE) from exc
        raise QgsProcessingException(one_line(qgis_wording(str(problem)))) from exc


def available_model_names() -> list[str]:
    """Names of the built-in model and of the packages in the configured models folder.

    Empty when the catalog cannot be read (missing packages, unreadable folder), so that
    the Toolbox still lists the algorithms and the file parameter remains usable.
    """
    try:
        from landslide_engine.models.catalog import list_models

        return [info.name for info in list_models(extra_dirs=settings.models_folders())]
    except (ImportError, InputError, OSError):
        return []


def resolve_model_path(name_or_path: str | None) -> Path:
    """The package file for a catalog name, a file path, or None (the built-in model)."""
    with engine_errors():
        from landslide_engine.models.catalog import resolve_model

        return resolve_model(name_or_path or None, extra_dirs=settings.models_folders())


def all_model_paths() -> list[Path]:
    """Every model the catalog lists, built-in first, for "run all models" modes."""
    with engine_errors():
        from landslide_engine.models.catalog import list_models

        infos = list_models(extra_dirs=settings.models_folders())
    if not infos:
        raise QgsProcessingException("no models found: neither a built-in model nor packages in the models folder")
    return [Path(info.path) for info in infos]
