"""The "Landslide detection" dock panel: pick layers and a model, run, see the result.

The panel only collects choices and shows results. It offers what ``landslide:detect`` offers,
the rarely changed options folded away under *Advanced options*, and hands its choices to the
same translation as the Toolbox (:mod:`landslide_qgis.engine_request`). The run itself is a
:class:`DetectTask` in QGIS's task manager, so the UI stays responsive, the progress bar
follows the engine, and Cancel stops the engine between batches. The engine's warnings are
shown under the result and written to the QGIS message log.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path

from qgis.core import (
    Qgis,
    QgsApplication,
    QgsMapLayerProxyModel,
    QgsMessageLog,
    QgsProject,
    QgsRasterLayer,
)
from qgis.gui import (
    QgsCheckableComboBox,
    QgsCollapsibleGroupBox,
    QgsDockWidget,
    QgsExtentWidget,
    QgsFileWidget,
    QgsMapLayerComboBox,
    QgsScrollArea,
)
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import (
    QAbstractScrollArea,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLayout,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from landslide_engine.errors import InputError
from landslide_engine.options import (
    BASELINE_OFFSETS,
    DEFAULT_MASK_CLASSES,
    PRECISION_HELP,
    PRECISIONS,
    REFLECTANCE_SCALES,
)
from landslide_qgis import dependencies, settings
from landslide_qgis.engine_request import (
    DEM_TILES_HELP,
    MASK_CLASS_LABELS,
    MASK_CLASSES_HELP,
    S2CLOUDLESS_HELP,
    RunChoices,
    SceneChoices,
    dem_input,
    predict_request,
    product_label,
    product_summary,
    request_defaults,
)
from landslide_qgis.gui.detect_task import DetectTask, ModelRun
from landslide_qgis.gui.device_info import describe_device
from landslide_qgis.gui.install_dialog import push_install_offer
from landslide_qgis.gui.layer_roles import raster_info, suggest_roles
from landslide_qgis.gui.result_layers import ROLE_PROPERTY, add_result_group, group_title, run_time, scene_name
from landslide_qgis.toolbox.scene_parameters import (
    BAND_MAP_HELP,
    BASELINE_OFFSET_HELP,
    PRODUCT_FILTER,
    PRODUCT_HELP,
    REFLECTANCE_SCALE_HELP,
)

MODEL_FILE_FILTER = "Model packages (*.onnx *.pt)"
LOG_TAG = "Landslide Mapper"
WARNING_STYLE = "color: #9a5b00;"  # dark amber: readable on light and dark panel themes
ERROR_STYLE = "color: #b00020;"
# product names and paths are words of 40-70 characters: a word-wrapped label would widen the panel to fit them
LONG_WORD = re.compile(r"[^\s\u200b]{24,}")


class FormGrid(QGridLayout):
    """A form (label, field) on a grid: a QFormLayout gave its word-wrapped rows (the product's facts, the device)
    the height of another width after a run, cutting off a line of one and padding another."""

    def __init__(self) -> None:
        super().__init__()
        self.setColumnStretch(1, 1)

    def addRow(self, label: str, field: QWidget | QLayout) -> None:
        """``field`` in a new row, after ``label`` (none when empty), as ``QFormLayout.addRow``."""
        row = self.rowCount()
        if label:  # beside a list, at its top as QFormLayout puts it
            top = isinstance(field, QAbstractScrollArea)
            self.addWidget(QLabel(label), row, 0, Qt.AlignmentFlag.AlignTop if top else Qt.AlignmentFlag.AlignVCenter)
        if isinstance(field, QLayout):
            self.addLayout(field, row, 1)
        else:
            self.addWidget(field, row, 1)


class LandslideDock(QgsDockWidget):
    """Inputs, model, device and threshold on top, advanced options folded; Run/Cancel and the result below."""

    def __init__(self, iface, parent: QWidget | None = None) -> None:
        super().__init__("Landslide detection", parent)
        self.setObjectName("LandslideDetectionDock")
        self.iface = iface
        self.task: DetectTask | None = None
        self._torn_down = False
        self._device_described = False
        self._device_problem: str | None = None
        self._run_scene = ""
        self._notes: list[str] = []
        self._warnings: list[str] = []
        self._build_ui()
        project = QgsProject.instance()
        project.layersAdded.connect(self._layers_added)
        project.layersRemoved.connect(self._layers_removed)
        self.refresh_models()
        self.refresh_layers()

    # ---- UI -------------------------------------------------------------------------------------------------
    def _build_ui(self) -> None:
        defaults = request_defaults()
        body = QWidget(self)
        layout = QVBoxLayout(body)
        form = FormGrid()
        layout.addLayout(form)

        self.product_widget = QgsFileWidget(body)
        self.product_widget.setStorageMode(QgsFileWidget.StorageMode.GetFile)
        self.product_widget.setFilter(PRODUCT_FILTER)
        self.product_widget.setToolTip(PRODUCT_HELP)
        self.product_widget.fileChanged.connect(self.describe_product)
        form.addRow("Product", self.product_widget)
        self.product_label = QLabel("", body)
        self.product_label.setWordWrap(True)
        form.addRow("", self.product_label)
        self.s2_list = QListWidget(body)
        self.s2_list.setToolTip("Check one multi-band Sentinel-2 layer, or one single-band layer per band.")
        self.s2_list.setMaximumHeight(110)
        form.addRow("Sentinel-2", self.s2_list)
        self.dem_combo = QgsMapLayerComboBox(body)
        self.dem_combo.setFilters(QgsMapLayerProxyModel.Filter.RasterLayer)
        self.dem_combo.setAllowEmptyLayer(True)  # rather empty than silently the first raster
        self.dem_combo.setLayer(None)
        self.dem_combo.setToolTip("One band of elevations in metres, any CRS.")
        form.addRow("DEM", self.dem_combo)
        self.dem_tiles_combo = QgsCheckableComboBox(body)
        self.dem_tiles_combo.setDefaultText("none")
        self.dem_tiles_combo.setToolTip(DEM_TILES_HELP)
        _narrow(self.dem_tiles_combo)
        form.addRow("More DEM tiles", self.dem_tiles_combo)
        self.slope_combo = QgsMapLayerComboBox(body)
        self.slope_combo.setFilters(QgsMapLayerProxyModel.Filter.RasterLayer)
        self.slope_combo.setAllowEmptyLayer(True)
        self.slope_combo.setLayer(None)
        self.slope_combo.setToolTip("Optional: computed from the DEM when empty.")
        form.addRow("Slope", self.slope_combo)
        self.suggest_button = QPushButton("Suggest layers from names", body)
        self.suggest_button.clicked.connect(self.apply_suggestions)
        form.addRow("", self.suggest_button)

        model_row = QHBoxLayout()
        self.model_combo = QComboBox(body)
        _narrow(self.model_combo)  # model descriptions are long
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
        self.model_combo.currentIndexChanged.connect(self._model_changed)
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
        if defaults.get("reflectance_scale") in REFLECTANCE_SCALES:
            self.scale_combo.setCurrentText(defaults["reflectance_scale"])
        self.scale_combo.setToolTip(REFLECTANCE_SCALE_HELP)
        form.addRow("Reflectance scale", self.scale_combo)
        self._build_cloud_mask(body, form)

        self.output_widget = QgsFileWidget(body)
        self.output_widget.setStorageMode(QgsFileWidget.StorageMode.GetDirectory)
        self.output_widget.setToolTip(
            "Where result files are written; when empty, the folder set in Processing → Options → Providers → "
            "Landslide detection (by default a 'landslides' folder next to the saved project)."
        )
        form.addRow("Output folder", self.output_widget)

        layout.addWidget(self._build_advanced(body, defaults))

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
        self.notes_label = QLabel("", body)
        self.notes_label.setWordWrap(True)
        self.notes_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.notes_label)
        self.warnings_label = QLabel("", body)
        self.warnings_label.setWordWrap(True)
        self.warnings_label.setStyleSheet(WARNING_STYLE)
        self.warnings_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.warnings_label)
        layout.addStretch(1)
        # after a run the warnings make the panel taller than a laptop screen: scroll rather than squeeze
        scroll = QgsScrollArea(self)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        # always there: a scroll bar appearing after a run narrowed the panel without re-wrapping its labels,
        # which then lost their last line
        scroll.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOn)
        scroll.setWidget(body)
        # as wide as the widgets need (the scroll area alone would start narrower and clip them)
        scroll.setMinimumWidth(body.minimumSizeHint().width() + scroll.verticalScrollBar().sizeHint().width())
        self.setWidget(scroll)

    def _build_cloud_mask(self, body: QWidget, form: FormGrid) -> None:
        """The classes made no data (the engine's list and default, as the Toolbox offers them) and s2cloudless."""
        self.mask_combo = QgsCheckableComboBox(body)
        for code, label in MASK_CLASS_LABELS.items():
            checked = Qt.CheckState.Checked if code in DEFAULT_MASK_CLASSES else Qt.CheckState.Unchecked
            self.mask_combo.addItemWithCheckState(label, checked, code)
        self.mask_combo.setDefaultText("none: nothing masked")
        self.mask_combo.setMaxVisibleItems(self.mask_combo.count())
        self.mask_combo.setToolTip(MASK_CLASSES_HELP)
        _narrow(self.mask_combo)
        form.addRow("Cloud mask", self.mask_combo)
        self.s2cloudless_check = QCheckBox("Find clouds with s2cloudless (L1C)", body)
        self.s2cloudless_check.setToolTip(S2CLOUDLESS_HELP)
        form.addRow("", self.s2cloudless_check)

    def _build_advanced(self, body: QWidget, defaults: dict) -> QgsCollapsibleGroupBox:
        """The options ``landslide:detect`` keeps under *Advanced parameters*, folded the same way."""
        box = QgsCollapsibleGroupBox("Advanced options", body)
        box.setCollapsed(True)
        form = QFormLayout(box)
        self.min_area_spin = QDoubleSpinBox(box)
        self.min_area_spin.setRange(0.0, 1e9)
        self.min_area_spin.setDecimals(0)
        self.min_area_spin.setSingleStep(100.0)
        self.min_area_spin.setSuffix(" m²")
        self.min_area_spin.setValue(float(defaults.get("min_area_m2") or 0.0))
        self.min_area_spin.setToolTip("Polygons smaller than this are dropped (the mask keeps them).")
        form.addRow("Minimum polygon area", self.min_area_spin)
        self.overlap_spin = QSpinBox(box)
        self.overlap_spin.setRange(0, 96)
        self.overlap_spin.setSuffix(" px")
        self.overlap_spin.setValue(int(defaults.get("overlap") or 0))
        self.overlap_spin.setToolTip("Overlapping patches are blended, which removes seams at patch borders.")
        form.addRow("Patch overlap", self.overlap_spin)
        self.tta_check = QCheckBox("flips, 4× slower", box)
        self.tta_check.setToolTip(
            "Averages predictions over flipped patches: slightly smoother, four times the compute."
        )
        form.addRow("Test-time augmentation", self.tta_check)
        self.precision_combo = QComboBox(box)
        self.precision_combo.addItems(list(PRECISIONS))
        if defaults.get("precision") in PRECISIONS:
            self.precision_combo.setCurrentText(defaults["precision"])
        self.precision_combo.setToolTip(PRECISION_HELP)
        form.addRow("Model number format", self.precision_combo)
        self.extent_widget = QgsExtentWidget(box)
        self.extent_widget.setNullValueAllowed(True, "Whole scene")
        self.extent_widget.clear()
        if self.iface is not None and hasattr(self.iface, "mapCanvas") and self.iface.mapCanvas() is not None:
            self.extent_widget.setMapCanvas(self.iface.mapCanvas())
        form.addRow("Extent", self.extent_widget)
        self.band_map_edit = QLineEdit(box)
        self.band_map_edit.setPlaceholderText("only if bands are not identified, e.g. B2=1,B3=2,B4=3")
        self.band_map_edit.setToolTip(BAND_MAP_HELP)
        form.addRow("Band map", self.band_map_edit)
        self.offset_combo = QComboBox(box)
        self.offset_combo.addItems(list(BASELINE_OFFSETS))
        if str(defaults.get("baseline_offset")) in BASELINE_OFFSETS:
            self.offset_combo.setCurrentText(str(defaults["baseline_offset"]))
        self.offset_combo.setToolTip(BASELINE_OFFSET_HELP)
        form.addRow("Baseline offset (DN)", self.offset_combo)
        self.advanced_box = box
        return box

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if not self._device_described:  # importing torch to probe CUDA costs seconds: only when first shown
            self._describe_device()

    # ---- layers and models ---------------------------------------------------------------------------------
    def _layers_added(self, layers) -> None:
        """List new rasters; suggest roles only for the pickers still empty, and never because of results.

        Processing marks its outputs as results (its layer post-processor) only after adding them, so a
        new raster that is not marked yet is watched and listed again once it is.
        """
        new = [layer for layer in layers if isinstance(layer, QgsRasterLayer)]
        for layer in new:
            if not _is_result(layer):
                layer.customPropertyChanged.connect(self._property_changed)
        if new:
            self.refresh_layers(suggest_empty=any(not _is_result(layer) for layer in new))

    def _property_changed(self, key: str) -> None:
        if key == ROLE_PROPERTY and not self._torn_down:
            self.refresh_layers(suggest_empty=False)

    def _layers_removed(self, _layer_ids) -> None:
        self.refresh_layers(suggest_empty=False)

    def refresh_layers(self, suggest_empty: bool = True) -> None:
        """List the project's rasters as input candidates, keeping the analyst's checks.

        Landslide results (of the dock or the Toolbox) are no inputs: they are left out of every picker.
        """
        checked = set(self.selected_s2_ids())
        tiles = set(self.selected_dem_tile_ids())
        results = [layer for layer in self._raster_layers(with_results=True) if _is_result(layer)]
        self.dem_combo.setExceptedLayerList(results)
        self.slope_combo.setExceptedLayerList(results)
        self.s2_list.clear()
        self.dem_tiles_combo.clear()
        for layer in self._raster_layers():
            item = QListWidgetItem(layer.name())
            item.setData(Qt.ItemDataRole.UserRole, layer.id())
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if layer.id() in checked else Qt.CheckState.Unchecked)
            self.s2_list.addItem(item)
            if layer.bandCount() == 1:  # a DEM tile is one band of elevations
                state = Qt.CheckState.Checked if layer.id() in tiles else Qt.CheckState.Unchecked
                self.dem_tiles_combo.addItemWithCheckState(layer.name(), state, layer.id())
        if suggest_empty:
            self.apply_suggestions(only_empty=True)

    def apply_suggestions(self, only_empty: bool = False) -> None:
        """Pre-select Sentinel-2, DEM and slope from layer names and band descriptions.

        With ``only_empty`` (layers were added) a picker the analyst has already set is left alone; the
        *Suggest* button replaces every pick. The dock's own result layers are never suggested.
        """
        layers = self._raster_layers()
        suggestion = suggest_roles([raster_info(layer) for layer in layers])
        by_id = {layer.id(): layer for layer in layers}
        if suggestion.s2 and not (only_empty and self.selected_s2_ids()):
            for i in range(self.s2_list.count()):
                item = self.s2_list.item(i)
                picked = item.data(Qt.ItemDataRole.UserRole) in suggestion.s2
                item.setCheckState(Qt.CheckState.Checked if picked else Qt.CheckState.Unchecked)
        if not (only_empty and self.dem_combo.currentLayer() is not None):
            # only a single-band layer that looks like a DEM: never a Sentinel-2 stack
            self.dem_combo.setLayer(by_id.get(suggestion.dem))
        if not (only_empty and self.slope_combo.currentLayer() is not None):
            # empty unless a layer looks like slope: a wrong slope is worse than one computed from the DEM
            self.slope_combo.setLayer(by_id.get(suggestion.slope))

    def selected_s2_ids(self) -> list[str]:
        return [
            self.s2_list.item(i).data(Qt.ItemDataRole.UserRole)
            for i in range(self.s2_list.count())
            if self.s2_list.item(i).checkState() == Qt.CheckState.Checked
        ]

    def selected_dem_tile_ids(self) -> list[str]:
        """The layers checked as further DEM tiles, mosaicked with the DEM."""
        return [str(layer_id) for layer_id in self.dem_tiles_combo.checkedItemsData()]

    def mask_classes(self) -> list[int]:
        """The SCL codes checked as cloud mask classes; none checked: nothing is masked."""
        return [int(code) for code in self.mask_combo.checkedItemsData()]

    def refresh_models(self) -> None:
        """Fill the model list from the engine's catalog (built-in first, then the models folder)."""
        self.model_combo.clear()
        self._model_names: dict[str, str] = {}
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
            self._model_names[str(info.path)] = info.name

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

    def _model_changed(self, *_args) -> None:
        if self._device_described:  # not before the panel is first shown: probing imports the runtimes
            self._describe_device()

    def _describe_device(self, *_args) -> None:
        """Say what the chosen device runs the chosen model on here; one this machine cannot run is said so,
        and Run refuses it."""
        self._device_described = True
        model = None if self.all_models_check.isChecked() else self.model_combo.currentData()
        text, usable = describe_device(self.device_combo.currentText(), model)
        self._device_problem = None if usable else text
        self.device_label.setText(text)
        self.device_label.setStyleSheet("" if usable else ERROR_STYLE)

    # ---- running --------------------------------------------------------------------------------------------
    def start_run(self) -> DetectTask | None:
        """Validate the choices, then queue a DetectTask; returns it (None when the input is incomplete)."""
        if self.task is not None:
            return None
        missing = dependencies.missing_for_inference()
        if missing:
            self._show_error(dependencies.missing_message(missing))
            return None
        if not self._device_described:
            self._describe_device()
        if self._device_problem:
            self._show_error(self._device_problem)
            return None
        project = QgsProject.instance()
        s2_layers = [project.mapLayer(layer_id) for layer_id in self.selected_s2_ids()]
        dem = self.dem_combo.currentLayer()
        if not (s2_layers or self.product_path()) or dem is None:
            self._show_error("Choose a Sentinel-2 product or layer(s), and a DEM.")
            return None
        runs = self._model_runs()
        if not runs:
            self._show_error("Choose a model: none is built in and the models folder is empty; use Browse….")
            return None
        try:
            request = predict_request(self.scene_choices(s2_layers, dem), self.run_choices(), str(runs[0].out_dir))
        except InputError as exc:
            self._show_error(str(exc))
            return None

        task = DetectTask(request, runs)
        task.progressChanged.connect(lambda value: self.progress_bar.setValue(int(value)))
        task.stage.connect(self.status_label.setText)
        task.warned.connect(self._show_warning)
        task.noted.connect(self._show_note)
        task.succeeded.connect(self._show_results)
        task.failed.connect(self._show_failure)
        self.task = task
        product = self.product_path()
        self._run_scene = product_label(product) if product else scene_name([layer.name() for layer in s2_layers])
        self._set_running(True)
        self.summary_label.setText("")
        self._notes, self._warnings = [], []
        self.warnings_label.setText("")
        self.notes_label.setText("")
        self.status_label.setText("Starting…")
        self.status_label.setStyleSheet("")
        QgsApplication.taskManager().addTask(task)
        return task

    def scene_choices(self, s2_layers: list, dem) -> SceneChoices:
        """The panel's scene inputs, as the Toolbox's scene parameters give them."""
        slope = self.slope_combo.currentLayer()
        project = QgsProject.instance()
        tiles = [project.mapLayer(layer_id) for layer_id in self.selected_dem_tile_ids()]
        extent, extent_crs = None, None
        if self.extent_widget.isValid():
            rect, crs = self.extent_widget.outputExtent(), self.extent_widget.outputCrs()
            extent = (rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum())
            extent_crs = (crs.authid() or crs.toWkt()) if crs.isValid() else None
        return SceneChoices(
            s2=[layer.source() for layer in s2_layers],
            dem=dem_input(dem.source(), [tile.source() for tile in tiles if tile is not None]),
            slope=slope.source() if slope is not None else None,
            product=self.product_path(),
            band_map=self.band_map_edit.text(),
            reflectance_scale=self.scale_combo.currentText(),
            baseline_offset=self.offset_combo.currentText(),
            extent=extent,
            extent_crs=extent_crs,
            mask_classes=self.mask_classes(),
            s2cloudless=self.s2cloudless_check.isChecked(),
        )

    def product_path(self) -> str | None:
        """The product chosen in the panel (a SAFE zip or MTD file, a STAC item), or None."""
        return self.product_widget.filePath().strip() or None

    def describe_product(self, path: str = "") -> None:
        """Show what the product's metadata says (level, baseline, sensing date) before the run, or why it
        cannot be read."""
        path = path.strip() if path else ""
        if not path:
            self.product_label.setText("")
            return
        try:
            self.product_label.setText(wrappable(product_summary(path)))
            self.product_label.setStyleSheet("")
        except InputError as exc:
            self.product_label.setText(wrappable(str(exc)))
            self.product_label.setStyleSheet(ERROR_STYLE)
        except ImportError:
            self.product_label.setText(dependencies.missing_message(dependencies.missing_for_inference()))
            self.product_label.setStyleSheet(ERROR_STYLE)

    def run_choices(self) -> RunChoices:
        """The panel's run options; the model of each run is set by :class:`DetectTask`."""
        threshold = self.threshold_spin.value()
        return RunChoices(
            device=self.device_combo.currentText(),
            precision=self.precision_combo.currentText(),
            batch_size=settings.batch_size(),
            overlap=self.overlap_spin.value(),
            threshold=threshold if threshold > 0 else None,
            tta=self.tta_check.isChecked(),
            min_area_m2=self.min_area_spin.value(),
        )

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
            label = self._model_names.get(path) or Path(path).stem
            runs.append(ModelRun(label=label, model_path=Path(path), out_dir=base / label if len(paths) > 1 else base))
        return runs

    def _output_base(self) -> Path:
        """A new folder for this run under the chosen folder, or under the persistent results folder."""
        stamp = dt.datetime.now().strftime("landslides_%Y%m%d_%H%M%S")
        chosen = self.output_widget.filePath()
        if chosen and os.path.isdir(chosen):
            return Path(chosen) / stamp
        return settings.results_folder(QgsProject.instance().absolutePath()) / stamp

    def _show_results(self, results: list) -> None:
        self._finish_run()
        when = run_time()
        add_result_group(
            QgsProject.instance(),
            group_title(self._run_scene, when),
            [(run.label, result) for run, result in results],
            self._run_scene,
            when,
        )
        lines = [
            f"{run.label}: {result.n_landslides} landslides, {result.landslide_area_m2 / 1e6:.3f} km² ({result.device})"
            for run, result in results
        ]
        folder = results[0][0].out_dir.parent if len(results) > 1 else results[0][0].out_dir
        lines.append(f"Files: {folder}")
        self.summary_label.setText("\n".join(lines))
        self.status_label.setText("Done.")
        self.device_label.setText(f"Ran on {results[-1][1].device}")

    def _show_note(self, note: str) -> None:
        """What the engine read from the inputs (the reflectance scale), under the result and in the log."""
        QgsMessageLog.logMessage(note, LOG_TAG, Qgis.MessageLevel.Info)
        self._notes.append(f"Found: {note}")
        self.notes_label.setText(wrappable("\n".join(self._notes)))

    def _show_warning(self, warning: str) -> None:
        """One engine warning under the result and in the QGIS message log, as it arises."""
        QgsMessageLog.logMessage(warning, LOG_TAG, Qgis.MessageLevel.Warning)
        self._warnings.append(f"Warning: {warning}")
        self.warnings_label.setText(wrappable("\n".join(self._warnings)))

    def _show_failure(self, message: str) -> None:
        self._finish_run()
        self.progress_bar.setValue(0)
        if message:
            self._show_error(message)
        else:
            self.status_label.setText("Cancelled: no layers were added.")

    def _show_error(self, message: str) -> None:
        self.status_label.setText(wrappable(message))
        self.status_label.setStyleSheet(ERROR_STYLE)
        if message.startswith(dependencies.MISSING_PREFIX) or "needs torch" in message:
            push_install_offer(self.iface.messageBar(), "Landslide detection", message, "needs torch" in message)
        else:
            self.iface.messageBar().pushWarning("Landslide detection", message)

    def _finish_run(self) -> None:
        self.task = None
        self._set_running(False)
        self.status_label.setStyleSheet("")

    def _set_running(self, running: bool) -> None:
        self.run_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)

    @staticmethod
    def _raster_layers(with_results: bool = False) -> list[QgsRasterLayer]:
        layers = QgsProject.instance().mapLayers().values()
        return [
            layer for layer in layers if isinstance(layer, QgsRasterLayer) and (with_results or not _is_result(layer))
        ]

    def teardown(self) -> None:
        """Stop following the project and cancel a running task; called when the plugin unloads."""
        self._torn_down = True
        project = QgsProject.instance()
        project.layersAdded.disconnect(self._layers_added)
        project.layersRemoved.disconnect(self._layers_removed)
        if self.task is not None:
            self.task.cancel()


def wrappable(text: str) -> str:
    """``text`` with a zero-width space after each ``_``, ``/`` and ``\\`` of its long words (product names, paths),
    so that a word-wrapped label breaks them there instead of widening the panel over the map."""
    return LONG_WORD.sub(lambda word: re.sub(r"([_/\\])", "\\1\u200b", word.group()), text)


def _narrow(combo: QComboBox) -> None:
    """Let a combo box whose text is a long list be elided rather than widen the panel over the map."""
    combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(14)


def _is_result(layer) -> bool:
    """A result layer of this plugin (dock or Toolbox): styled by it, never an input suggestion."""
    return layer.customProperty(ROLE_PROPERTY) is not None
