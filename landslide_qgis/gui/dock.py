"""The "Landslide detection" dock panel: pick layers and a model, run, see the result.

The panel only collects choices and shows results. The run itself is a
:class:`DetectTask` in QGIS's task manager, so the UI stays responsive, the progress
bar follows the engine, and Cancel stops the engine between batches.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from pathlib import Path

from osgeo import gdal
from qgis.core import (
    QgsApplication,
    QgsMapLayerProxyModel,
    QgsProcessingException,
    QgsProcessingUtils,
    QgsProject,
    QgsRasterLayer,
)
from qgis.gui import QgsDockWidget, QgsFileWidget, QgsMapLayerComboBox
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from landslide_engine.errors import InputError
from landslide_qgis import dependencies, settings
from landslide_qgis.gui.detect_task import DetectTask, ModelRun
from landslide_qgis.gui.device_info import describe_device
from landslide_qgis.gui.layer_roles import RasterInfo, suggest_roles
from landslide_qgis.gui.result_layers import add_result_group
from landslide_qgis.processing.detect_algorithm import REFLECTANCE_SCALES, parse_band_map

MODEL_FILE_FILTER = "Model packages (*.onnx *.pt)"


class LandslideDock(QgsDockWidget):
    """Inputs, model, device and threshold on top; Run/Cancel, progress and the area summary below."""

    def __init__(self, iface, parent: QWidget | None = None) -> None:
        super().__init__("Landslide detection", parent)
        self.setObjectName("LandslideDetectionDock")
        self.iface = iface
        self.task: DetectTask | None = None
        self._device_described = False
        self._build_ui()
        project = QgsProject.instance()
        project.layersAdded.connect(self._layers_changed)
        project.layersRemoved.connect(self._layers_changed)
        self.refresh_models()
        self.refresh_layers()

    # ---- UI -------------------------------------------------------------------------------------------------
    def _build_ui(self) -> None:
        body = QWidget(self)
        layout = QVBoxLayout(body)
        form = QFormLayout()
        layout.addLayout(form)

        self.s2_list = QListWidget(body)
        self.s2_list.setToolTip("Check one multi-band Sentinel-2 layer, or one single-band layer per band.")
        self.s2_list.setMaximumHeight(110)
        form.addRow("Sentinel-2", self.s2_list)
        self.dem_combo = QgsMapLayerComboBox(body)
        self.dem_combo.setFilters(QgsMapLayerProxyModel.Filter.RasterLayer)
        self.dem_combo.setAllowEmptyLayer(True)  # rather empty than silently the first raster
        form.addRow("DEM", self.dem_combo)
        self.slope_combo = QgsMapLayerComboBox(body)
        self.slope_combo.setFilters(QgsMapLayerProxyModel.Filter.RasterLayer)
        self.slope_combo.setAllowEmptyLayer(True)
        self.slope_combo.setToolTip("Optional: computed from the DEM when empty.")
        form.addRow("Slope", self.slope_combo)
        self.suggest_button = QPushButton("Suggest layers from names", body)
        self.suggest_button.clicked.connect(self.apply_suggestions)
        form.addRow("", self.suggest_button)

        model_row = QHBoxLayout()
        self.model_combo = QComboBox(body)
        model_row.addWidget(self.model_combo, 1)
        self.browse_button = QPushButton("Browse…", body)
        self.browse_button.clicked.connect(self._browse_model)
        model_row.addWidget(self.browse_button)
        form.addRow("Model", model_row)
        self.all_models_check = QCheckBox("Run all models side by side", body)
        self.all_models_check.toggled.connect(self.model_combo.setDisabled)
        form.addRow("", self.all_models_check)

        self.device_combo = QComboBox(body)
        self.device_combo.addItems(list(settings.DEVICES))
        self.device_combo.setCurrentText(settings.default_device())
        self.device_combo.currentTextChanged.connect(self._describe_device)
        form.addRow("Device", self.device_combo)
        self.device_label = QLabel("", body)
        self.device_label.setWordWrap(True)
        form.addRow("", self.device_label)

        self.threshold_spin = QDoubleSpinBox(body)
        self.threshold_spin.setRange(0.0, 0.99)
        self.threshold_spin.setSingleStep(0.05)
        self.threshold_spin.setSpecialValueText("model's own")  # shown at the minimum, 0 -> None
        self.threshold_spin.setValue(0.0)
        form.addRow("Threshold", self.threshold_spin)

        self.scale_combo = QComboBox(body)
        self.scale_combo.addItems(list(REFLECTANCE_SCALES))
        self.scale_combo.setToolTip(
            "l1c: ESA digital numbers (reflectance × 10000); x1000: reflectance × 1000 (ARCSI and others); "
            "0-1: reflectance as floats."
        )
        form.addRow("Reflectance scale", self.scale_combo)
        self.band_map_edit = QLineEdit(body)
        self.band_map_edit.setPlaceholderText("only if bands are not identified, e.g. B2=1,B3=2,B4=3")
        form.addRow("Band map", self.band_map_edit)

        self.output_widget = QgsFileWidget(body)
        self.output_widget.setStorageMode(QgsFileWidget.StorageMode.GetDirectory)
        self.output_widget.setToolTip("Where result files are written; a temporary folder when empty.")
        form.addRow("Output folder", self.output_widget)

        buttons = QHBoxLayout()
        self.run_button = QPushButton("Run", body)
        self.run_button.clicked.connect(self.start_run)
        self.cancel_button = QPushButton("Cancel", body)
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel_run)
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        layout.addLayout(buttons)
        self.progress_bar = QProgressBar(body)
        self.progress_bar.setRange(0, 100)
        self.progress_bar.setValue(0)
        layout.addWidget(self.progress_bar)
        self.status_label = QLabel("", body)
        self.status_label.setWordWrap(True)
        layout.addWidget(self.status_label)
        self.summary_label = QLabel("", body)
        self.summary_label.setWordWrap(True)
        self.summary_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.summary_label)
        layout.addStretch(1)
        self.setWidget(body)

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if not self._device_described:  # importing torch to probe CUDA costs seconds: only when first shown
            self._describe_device(self.device_combo.currentText())

    # ---- layers and models ---------------------------------------------------------------------------------
    def _layers_changed(self, *_args) -> None:
        self.refresh_layers()

    def refresh_layers(self) -> None:
        """List the project's rasters as Sentinel-2 candidates, keeping checks; suggest roles for new ones."""
        checked = set(self.selected_s2_ids())
        known = {self.s2_list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.s2_list.count())}
        self.s2_list.clear()
        for layer in self._raster_layers():
            item = QListWidgetItem(layer.name())
            item.setData(Qt.ItemDataRole.UserRole, layer.id())
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if layer.id() in checked else Qt.CheckState.Unchecked)
            self.s2_list.addItem(item)
        if any(layer.id() not in known for layer in self._raster_layers()):
            self.apply_suggestions()

    def apply_suggestions(self) -> None:
        """Pre-select Sentinel-2, DEM and slope from layer names and band descriptions."""
        layers = self._raster_layers()
        suggestion = suggest_roles([_raster_info(layer) for layer in layers])
        by_id = {layer.id(): layer for layer in layers}
        if suggestion.s2:
            for i in range(self.s2_list.count()):
                item = self.s2_list.item(i)
                item.setCheckState(
                    Qt.CheckState.Checked
                    if item.data(Qt.ItemDataRole.UserRole) in suggestion.s2
                    else Qt.CheckState.Unchecked
                )
        if suggestion.dem in by_id or self.dem_combo.currentLayer() is None:
            self.dem_combo.setLayer(by_id.get(suggestion.dem))
        # empty unless a layer looks like slope: a wrong slope is worse than one computed from the DEM
        self.slope_combo.setLayer(by_id.get(suggestion.slope))

    def selected_s2_ids(self) -> list[str]:
        return [
            self.s2_list.item(i).data(Qt.ItemDataRole.UserRole)
            for i in range(self.s2_list.count())
            if self.s2_list.item(i).checkState() == Qt.CheckState.Checked
        ]

    def refresh_models(self) -> None:
        """Fill the model list from the engine's catalog (built-in first, then the models folder)."""
        self.model_combo.clear()
        try:
            from landslide_engine.models.catalog import list_models

            infos = list_models(extra_dirs=settings.models_folders())
        except ImportError:
            self.status_label.setText(dependencies.missing_message(dependencies.missing_for_inference()))
            return
        except (InputError, OSError) as exc:
            self.status_label.setText(f"Models folder: {exc}")
            return
        for info in infos:
            f1 = (info.metrics or {}).get("f1")
            detail = f"{info.architecture}/{info.encoder}" + (f", F1 {f1:.3f}" if isinstance(f1, float) else "")
            self.model_combo.addItem(f"{info.name} ({detail}, {info.origin})", str(info.path))

    def add_model_file(self, path: str) -> None:
        """Add a package file to the list (or select it when already listed)."""
        index = self.model_combo.findData(path)
        if index < 0:
            self.model_combo.addItem(f"{Path(path).name} (file)", path)
            index = self.model_combo.count() - 1
        self.model_combo.setCurrentIndex(index)

    def _browse_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Model package", "", MODEL_FILE_FILTER)
        if path:
            self.add_model_file(path)

    def _describe_device(self, choice: str) -> None:
        self._device_described = True
        self.device_label.setText(describe_device(choice))

    # ---- running --------------------------------------------------------------------------------------------
    def start_run(self) -> DetectTask | None:
        """Validate the choices, then queue a DetectTask; returns it (None when the input is incomplete)."""
        if self.task is not None:
            return None
        missing = dependencies.missing_for_inference()
        if missing:
            self._show_error(dependencies.missing_message(missing))
            return None
        project = QgsProject.instance()
        s2 = [project.mapLayer(layer_id).source() for layer_id in self.selected_s2_ids()]
        dem = self.dem_combo.currentLayer()
        if not s2 or dem is None:
            self._show_error("Choose the Sentinel-2 layer(s) and a DEM.")
            return None
        runs = self._model_runs()
        if not runs:
            self._show_error("Choose a model: none is built in and the models folder is empty; use Browse….")
            return None

        try:
            band_map = parse_band_map(self.band_map_edit.text())
        except QgsProcessingException as exc:
            self._show_error(str(exc))
            return None

        from landslide_engine.pipeline import PredictRequest

        slope = self.slope_combo.currentLayer()
        threshold = self.threshold_spin.value()
        request = PredictRequest(
            s2=s2,
            dem=dem.source(),
            out_dir=str(runs[0].out_dir),
            slope=slope.source() if slope is not None else None,
            device=self.device_combo.currentText(),
            batch_size=settings.batch_size(),
            threshold=threshold if threshold > 0 else None,
            band_map=band_map,
            reflectance_scale=self.scale_combo.currentText(),
        )
        task = DetectTask(request, runs)
        task.progressChanged.connect(lambda value: self.progress_bar.setValue(int(value)))
        task.stage.connect(self.status_label.setText)
        task.succeeded.connect(self._show_results)
        task.failed.connect(self._show_failure)
        self.task = task
        self._set_running(True)
        self.summary_label.setText("")
        self.status_label.setText("Starting…")
        QgsApplication.taskManager().addTask(task)
        return task

    def cancel_run(self) -> None:
        if self.task is not None:
            self.status_label.setText("Cancelling…")
            self.task.cancel()

    def _model_runs(self) -> list[ModelRun]:
        base = self._output_base()
        if self.all_models_check.isChecked():
            paths = [self.model_combo.itemData(i) for i in range(self.model_combo.count())]
        else:
            paths = [self.model_combo.currentData()] if self.model_combo.currentData() else []
        runs = []
        for path in paths:
            label = Path(path).stem
            runs.append(ModelRun(label=label, model_path=Path(path), out_dir=base / label if len(paths) > 1 else base))
        return runs

    def _output_base(self) -> Path:
        stamp = dt.datetime.now().strftime("landslides_%Y%m%d_%H%M%S")
        chosen = self.output_widget.filePath()
        if chosen and os.path.isdir(chosen):
            return Path(chosen) / stamp
        return Path(tempfile.mkdtemp(prefix=stamp + "_", dir=QgsProcessingUtils.tempFolder()))

    def _show_results(self, results: list) -> None:
        self._finish_run()
        title = "Landslides " + dt.datetime.now().strftime("%Y-%m-%d %H:%M")
        add_result_group(QgsProject.instance(), title, [(run.label, result) for run, result in results])
        lines = [
            f"{run.label}: {result.n_landslides} landslides, {result.landslide_area_m2 / 1e6:.3f} km² ({result.device})"
            for run, result in results
        ]
        self.summary_label.setText("\n".join(lines))
        self.status_label.setText("Done.")
        self.device_label.setText(f"Ran on {results[-1][1].device}" if results else self.device_label.text())

    def _show_failure(self, message: str) -> None:
        self._finish_run()
        self.progress_bar.setValue(0)
        if message:
            self._show_error(message)
        else:
            self.status_label.setText("Cancelled: no layers were added.")

    def _show_error(self, message: str) -> None:
        self.status_label.setText(message)
        self.iface.messageBar().pushWarning("Landslide detection", message)

    def _finish_run(self) -> None:
        self.task = None
        self._set_running(False)

    def _set_running(self, running: bool) -> None:
        self.run_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)

    @staticmethod
    def _raster_layers() -> list[QgsRasterLayer]:
        layers = QgsProject.instance().mapLayers().values()
        return [layer for layer in layers if isinstance(layer, QgsRasterLayer)]

    def teardown(self) -> None:
        """Stop following the project and cancel a running task; called when the plugin unloads."""
        project = QgsProject.instance()
        project.layersAdded.disconnect(self._layers_changed)
        project.layersRemoved.disconnect(self._layers_changed)
        if self.task is not None:
            self.task.cancel()


def _raster_info(layer: QgsRasterLayer) -> RasterInfo:
    """Band descriptions come from GDAL: QGIS 3.22's provider API does not expose them."""
    descriptions = [""] * layer.bandCount()
    if layer.providerType() == "gdal":
        dataset = gdal.OpenEx(layer.source(), gdal.OF_RASTER)
        if dataset is not None:
            descriptions = [dataset.GetRasterBand(b).GetDescription() for b in range(1, dataset.RasterCount + 1)]
    return RasterInfo(layer.id(), layer.name(), Path(layer.source()).stem, tuple(descriptions))
