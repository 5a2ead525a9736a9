"""The dialog that installs the missing Python packages from inside QGIS.

It runs ``install_dependencies.py`` (the same file administrators run headless) with QGIS's own Python in a
QProcess, so QGIS stays responsive, pip's lines scroll by and its download progress fills the bar. A failure ends
in one line (offline, proxy, no wheel for this Python). On success the packages folder is put on ``sys.path``
at once: detection works without restarting QGIS unless a half-imported package was already loaded.
"""

from __future__ import annotations

import re
from pathlib import Path

from qgis.core import Qgis
from qgis.gui import QgsMessageBar
from qgis.PyQt.QtCore import QProcess, QProcessEnvironment
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
)

from landslide_qgis import install_dependencies as installer

_SCRIPT = Path(installer.__file__).resolve()
_PROGRESS = re.compile(r"Progress (\d+) of (\d+)")


class InstallDependenciesDialog(QDialog):
    """Offers to install what detection lacks (and optionally PyTorch) into the plugin's packages folder."""

    def __init__(self, parent=None, with_torch: bool = False) -> None:
        super().__init__(parent)
        self.setWindowTitle("Landslide Mapper: install Python packages")
        self.setMinimumWidth(640)
        self.target = installer.packages_dir()
        self.process: QProcess | None = None
        self.succeeded = False
        try:
            self.python: Path | None = installer.qgis_python()
            where = f"with QGIS's Python ({self.python})"
        except installer.InstallError as exc:
            self.python = None
            where = str(exc)
        missing = installer.missing_modules()
        needed = (
            f"Landslide Mapper needs: {', '.join(missing.values())}."
            if missing
            else "Everything .onnx models need is installed; PyTorch is optional (.pt models, training)."
        )
        self.intro = QLabel(
            f"{needed}<br>Packages are installed {where} into <tt>{self.target}</tt>, a folder used only by "
            "this plugin (delete it to uninstall). QGIS's own packages, numpy included, are kept as they are."
        )
        self.intro.setWordWrap(True)
        self.torch_box = QCheckBox("Also install PyTorch (for .pt models and training; a download of about 1 GB)")
        self.torch_box.setChecked(with_torch)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMinimumHeight(180)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.install_button = self.buttons.addButton("Install", QDialogButtonBox.ButtonRole.AcceptRole)
        self.install_button.setEnabled(self.python is not None)
        self.install_button.clicked.connect(self.start)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        for widget in (self.intro, self.torch_box, self.log, self.progress, self.status, self.buttons):
            layout.addWidget(widget)

    def arguments(self) -> list[str]:
        """The installer's command line (after the interpreter)."""
        args = [str(_SCRIPT), "--target", str(self.target)]
        return [*args, "--torch"] if self.torch_box.isChecked() else args

    def start(self) -> None:
        """Run the installer; the dialog stays usable (and QGIS responsive) while pip works."""
        if self.python is None or self.process is not None:
            return
        self.install_button.setEnabled(False)
        self.torch_box.setEnabled(False)
        self.progress.setRange(0, 0)  # busy until pip reports a download size
        self.status.setText("Installing…")
        self.log.clear()
        self._stderr: list[str] = []
        process = QProcess(self)
        env = QProcessEnvironment()
        for key, value in installer.pip_environment().items():
            env.insert(key, value)
        process.setProcessEnvironment(env)
        process.readyReadStandardOutput.connect(self._read_stdout)
        process.readyReadStandardError.connect(self._read_stderr)
        process.finished.connect(self._finished)
        process.errorOccurred.connect(self._failed_to_start)
        self.process = process
        process.start(str(self.python), self.arguments())

    def _lines(self, data) -> list[str]:
        return bytes(data).decode("utf-8", "replace").splitlines()

    def _read_stdout(self) -> None:
        for line in self._lines(self.process.readAllStandardOutput()):
            match = _PROGRESS.search(line)
            if match:
                done, total = (int(g) for g in match.groups())
                scale = max(1, total // 1_000_000)  # QProgressBar holds an int: count in MB for big wheels
                self.progress.setRange(0, total // scale)
                self.progress.setValue(done // scale)
                continue
            self.log.appendPlainText(line)

    def _read_stderr(self) -> None:
        for line in self._lines(self.process.readAllStandardError()):
            self._stderr.append(line)
            self.log.appendPlainText(line)

    def _failed_to_start(self, error) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self._done(False, f"cannot start {self.python}")

    def _finished(self, code: int, _status=None) -> None:
        errors = [line.removeprefix("error: ") for line in self._stderr if line.startswith("error: ")]
        if code == 0:
            installer.add_to_sys_path()
            self._done(True, "Installed. Landslide detection is ready (restart QGIS if it still says otherwise).")
        else:
            self._done(False, errors[-1] if errors else (self._stderr or [f"the installer exited with {code}"])[-1])

    def _done(self, ok: bool, message: str) -> None:
        self.succeeded = ok
        self.process = None
        self.progress.setRange(0, 1)
        self.progress.setValue(1 if ok else 0)
        self.status.setText(message if ok else f"Installation failed: {message}")
        self.install_button.setEnabled(not ok)
        self.torch_box.setEnabled(not ok)


def push_install_offer(bar, title: str, message: str, with_torch: bool = False) -> None:
    """``message`` in the message bar with an Install… button that opens the dialog (a plain warning on a test
    double of the bar)."""
    if not isinstance(bar, QgsMessageBar):
        bar.pushWarning(title, message)
        return
    item = bar.createMessage(title, message)
    button = QPushButton("Install…", item)
    button.clicked.connect(lambda: InstallDependenciesDialog(bar.window(), with_torch=with_torch).exec())
    item.layout().addWidget(button)
    bar.pushWidget(item, Qgis.MessageLevel.Warning)
