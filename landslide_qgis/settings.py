"""The plugin's Processing -> Options settings: default device, models folder, batch size, results folder.

They are registered with ``ProcessingConfig`` (as qgis-processing-r does) so that they
appear under Processing -> Options -> Providers -> Landslide detection, are stored in
the user's profile, and are shared by the algorithms and the dock panel.
"""

from __future__ import annotations

from pathlib import Path

from processing.core.ProcessingConfig import ProcessingConfig, Setting

from landslide_engine.options import DEVICES

DEFAULT_DEVICE = "LANDSLIDE_DEFAULT_DEVICE"
MODELS_FOLDER = "LANDSLIDE_MODELS_FOLDER"
BATCH_SIZE = "LANDSLIDE_BATCH_SIZE"
RESULTS_FOLDER = "LANDSLIDE_RESULTS_FOLDER"
# under the saved project's folder, or under the user's documents when the project is not saved yet
RESULTS_SUBFOLDER = "landslides"
USER_RESULTS_FOLDER = "Landslide Mapper"

_DEFAULT_BATCH_SIZE = 16


def register(group: str) -> None:
    """Add the settings to Processing -> Options under ``group`` and load their saved values."""
    ProcessingConfig.addSetting(
        Setting(
            group,
            DEFAULT_DEVICE,
            "Default device (auto picks a CUDA GPU when one is usable)",
            DEVICES[0],
            valuetype=Setting.SELECTION,
            options=list(DEVICES),
        )
    )
    ProcessingConfig.addSetting(
        Setting(
            group,
            MODELS_FOLDER,
            "Models folder (extra .onnx/.pt model packages listed next to the built-in model)",
            "",
            valuetype=Setting.FOLDER,
        )
    )
    ProcessingConfig.addSetting(
        Setting(group, BATCH_SIZE, "Batch size (patches per inference batch)", _DEFAULT_BATCH_SIZE)
    )
    ProcessingConfig.addSetting(
        Setting(
            group,
            RESULTS_FOLDER,
            "Dock results folder (empty: a 'landslides' folder next to the saved project, "
            "else 'Landslide Mapper' in your documents)",
            "",
            valuetype=Setting.FOLDER,
        )
    )
    ProcessingConfig.readSettings()


def unregister() -> None:
    for name in (DEFAULT_DEVICE, MODELS_FOLDER, BATCH_SIZE, RESULTS_FOLDER):
        if name in ProcessingConfig.settings:
            ProcessingConfig.removeSetting(name)


def default_device() -> str:
    value = ProcessingConfig.getSetting(DEFAULT_DEVICE, readable=True)
    return value if value in DEVICES else DEVICES[0]


def models_folders() -> tuple[Path, ...]:
    """The configured models folder as ``extra_dirs`` for the engine's catalog (empty when unset)."""
    value = ProcessingConfig.getSetting(MODELS_FOLDER)
    return (Path(value),) if value and Path(value).is_dir() else ()


def batch_size() -> int:
    try:
        value = int(ProcessingConfig.getSetting(BATCH_SIZE))
    except (TypeError, ValueError):
        return _DEFAULT_BATCH_SIZE
    return value if value > 0 else _DEFAULT_BATCH_SIZE


def results_folder(project_folder: str) -> Path:
    """Where the dock writes results: the setting, else next to the saved project, else the user's documents.

    Never QGIS's temporary folder, which is emptied when QGIS closes: an analyst's map must outlive the session.
    """
    value = ProcessingConfig.getSetting(RESULTS_FOLDER)
    if value:
        return Path(value)
    if project_folder:
        return Path(project_folder) / RESULTS_SUBFOLDER
    from qgis.PyQt.QtCore import QStandardPaths

    documents = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.DocumentsLocation)
    return Path(documents or Path.home()) / USER_RESULTS_FOLDER
