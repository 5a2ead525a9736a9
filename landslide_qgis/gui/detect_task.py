"""One background detection run of the dock: one or several models over the same inputs.

Following the QgsTask pattern (as Deepness does), ``run()`` works in a worker thread
and touches no QGIS layer or widget; it only calls the engine. The results, or the
one-line error, are handed to the dock through signals emitted from ``finished()``,
which QGIS calls on the main thread. The engine's warnings are signalled as they arise
(queued to the main thread), so the dock shows them even when the run then fails.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, replace
from pathlib import Path

from qgis.core import Qgis, QgsMessageLog, QgsTask
from qgis.PyQt.QtCore import pyqtSignal

from landslide_engine.errors import Cancelled, InputError, ModelError, classify, one_line
from landslide_qgis import dependencies
from landslide_qgis.engine_request import qgis_wording


@dataclass(frozen=True)
class ModelRun:
    """One model's run: a label for the layer group and where its files go."""

    label: str
    model_path: Path
    out_dir: Path


class DetectTask(QgsTask):
    """Runs ``predict_scene`` once per :class:`ModelRun`, sequentially (one GPU, bounded memory)."""

    stage = pyqtSignal(str)  # engine stage messages, for the dock's status line
    warned = pyqtSignal(str)  # one engine warning, prefixed with the model's label when several run
    noted = pyqtSignal(str)  # what the engine found about the inputs (the reflectance scale), prefixed likewise
    succeeded = pyqtSignal(list)  # list[tuple[ModelRun, PredictResult]]
    failed = pyqtSignal(str)  # one line; empty when cancelled

    def __init__(self, request, runs: list[ModelRun]) -> None:
        """``request`` is a ``PredictRequest`` whose ``model``/``out_dir`` each run replaces."""
        super().__init__("Landslide detection", QgsTask.Flag.CanCancel)
        self._request = request
        self._runs = runs
        self._results: list = []
        self._error = ""

    def run(self) -> bool:
        try:
            from landslide_engine.pipeline import predict_scene

            for index, model_run in enumerate(self._runs):
                request = replace(self._request, model=str(model_run.model_path), out_dir=str(model_run.out_dir))
                warn = self._notice_for(self.warned, model_run.label)
                try:
                    result = predict_scene(
                        request,
                        progress=self._progress_for(index, model_run.label),
                        cancelled=self.isCanceled,
                        warn=warn,
                        info=self._notice_for(self.noted, model_run.label),
                    )
                except ModelError as exc:
                    if len(self._runs) == 1:
                        raise
                    warn(f"model left out: {one_line(str(exc))}")  # "all models": one bad package stops no other
                    continue
                self._results.append((model_run, result))
            if not self._results:
                raise ModelError("none of the models could run (see the warnings)")
        except Cancelled:
            return False
        except ImportError as exc:
            self._error = dependencies.missing_message(dependencies.missing_for_import_error(exc))
            return False
        except Exception as exc:
            problem = classify(exc)  # bad input, full disk, corrupt file: one line
            if isinstance(problem, InputError):
                self._error = one_line(qgis_wording(str(problem)))
                return False
            # a bug must reach the analyst as a message, not kill the task silently
            QgsMessageLog.logMessage(traceback.format_exc(), "Landslide Mapper", Qgis.MessageLevel.Critical)
            self._error = f"unexpected error: {exc} (details in the Log Messages panel)"
            return False
        return not self.isCanceled()

    def finished(self, ok: bool) -> None:
        if ok:
            self.succeeded.emit(self._results)
        else:
            self.failed.emit("" if self.isCanceled() else self._error or "detection failed; see the QGIS log")

    def _notice_for(self, signal, label: str):
        """An engine callback that emits ``signal`` (queued to the main thread) with the model's label."""
        prefix = f"{label}: " if len(self._runs) > 1 else ""

        def notice(message: str) -> None:
            signal.emit(prefix + qgis_wording(message))

        return notice

    def _progress_for(self, index: int, label: str):
        share = 100.0 / len(self._runs)
        prefix = f"{label}: " if len(self._runs) > 1 else ""

        def progress(percent: float, message: str = "") -> None:
            self.setProgress(index * share + float(percent) * share / 100.0)
            if message:
                self.stage.emit(prefix + message)

        return progress
