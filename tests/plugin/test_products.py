"""Products in QGIS: the Toolbox and the dock take a SAFE zip (or MTD file, STAC item) as well as layers; the
dock shows the product's level, baseline, date and cloud mask before the run; the cloud mask classes and further
DEM tiles are a choice in both, translated once (``engine_request``), so both map the same."""

from __future__ import annotations

import time

import numpy as np
import pytest
import rasterio
from qgis.PyQt.QtCore import Qt

from tests.products import L2A_CROP, crop_scl, l2a_crop_safe, zip_product
from tests.qgis_helpers import WarningFeedback, processing_outputs
from tests.scenes import geographic_dem


@pytest.fixture(scope="module")
def product(tmp_path_factory):
    """The real N0510 L2A crop as a SAFE zip with a scene classification, and a DEM under it."""
    if not L2A_CROP.is_dir():
        pytest.skip(f"the real L2A crop is not at {L2A_CROP}")
    folder = tmp_path_factory.mktemp("product")
    scl = crop_scl()
    safe = l2a_crop_safe(folder / "safe", scl)
    with rasterio.open(next(safe.rglob("*_B02_10m.jp2"))) as b02:
        dem = geographic_dem(folder / "dem.tif", b02.crs, b02.bounds)
    return zip_product(safe, folder / f"{safe.stem}.zip"), dem, np.kron(scl, np.ones((2, 2), dtype=np.uint8))


def test_toolbox_detect_takes_a_safe_zip_and_masks_its_clouds(provider, product, tmp_path):
    import processing

    archive, dem, scl = product
    feedback = WarningFeedback.make()
    infos = []
    feedback.pushInfo = lambda text: infos.append(text)
    result = processing.run(
        "landslide:detect",
        {"PRODUCT": str(archive), "DEM": str(dem), "DEVICE": "cpu", **processing_outputs(tmp_path)},
        feedback=feedback,
    )
    assert any(
        "Product: S2B_MSIL2A_20231217T135659_N0510" in i and "L2A, baseline 05.10, sensed 2023-12-17" in i
        for i in infos
    ), infos
    assert any("masked as no data by the SCL cloud mask" in w for w in feedback.warnings), feedback.warnings
    with rasterio.open(result["OUTPUT_PROBABILITY"]) as prob:
        nodata = prob.read(1) == prob.nodata
    clouds = np.isin(scl, (3, 8, 9, 10, 11))
    assert nodata[clouds].all() and not nodata[np.isin(scl, (4, 5))].any()


def test_toolbox_mask_classes_choice_reaches_the_engine(provider, product, tmp_path):
    import processing

    archive, dem, scl = product
    result = processing.run(
        "landslide:stack",
        {"PRODUCT": str(archive), "DEM": str(dem), "MASK_CLASSES": [], "OUTPUT": str(tmp_path / "none.tif")},
    )
    with rasterio.open(result["OUTPUT"]) as ds:
        assert (ds.read(2)[np.isin(scl, (8, 9))] != ds.nodata).all()  # nothing masked when nothing is chosen
    result = processing.run(
        "landslide:stack",
        {"PRODUCT": str(archive), "DEM": str(dem), "MASK_CLASSES": [9], "OUTPUT": str(tmp_path / "high.tif")},
    )  # option 9: "9 cloud high probability"
    with rasterio.open(result["OUTPUT"]) as ds:
        nodata = ds.read(2) == ds.nodata
    assert nodata[scl == 9].all() and not nodata[scl == 8].any()


def test_toolbox_needs_a_product_or_layers(provider, product, tmp_path):
    import processing
    from qgis.core import QgsProcessingException

    _, dem, _ = product
    with pytest.raises(QgsProcessingException, match="Sentinel-2 product or at least one"):
        processing.run("landslide:detect", {"DEM": str(dem), **processing_outputs(tmp_path)})


def test_dock_shows_the_product_and_runs_it(qgis_app, qgis_iface, qgis_new_project, product, tmp_path):
    from qgis.core import QgsProject, QgsRasterLayer

    from landslide_qgis.gui.dock import LandslideDock

    archive, dem, _ = product
    assert QgsProject.instance().addMapLayer(QgsRasterLayer(str(dem), "dem"))
    panel = LandslideDock(qgis_iface)
    panel.resize(420, 700)
    panel.show()  # as in QGIS: laid out before the product is chosen and the run adds lines
    try:
        panel.product_widget.setFilePath(str(archive))
        shown = panel.product_label.text()
        assert "L2A, baseline 05.10, sensed 2023-12-17; cloud mask SCL" in shown
        name = "S2B_MSIL2A_20231217T135659_N0510_R067_T21JUK_20231217T175625"
        assert f"{name}:" in shown.replace("\u200b", "")
        # the 60-character product name wraps in the panel instead of widening it over the map
        label = panel.product_label
        assert label.minimumSizeHint().width() < label.fontMetrics().horizontalAdvance(name) / 2
        panel.product_widget.setFilePath(str(tmp_path / "missing.zip"))
        assert "not found" in panel.product_label.text()
        panel.product_widget.setFilePath(str(archive))
        panel.dem_combo.setLayer(QgsProject.instance().mapLayersByName("dem")[0])
        panel.device_combo.setCurrentText("cpu")
        assert panel.start_run() is not None
        deadline = time.monotonic() + 120
        while panel.task is not None and time.monotonic() < deadline:
            qgis_app.processEvents()
            time.sleep(0.02)
        group = QgsProject.instance().layerTreeRoot().children()[0]
        assert group.name().startswith("Landslides · S2B_MSIL2A_20231217T135659_N0510")
        assert "cloud mask" in panel.warnings_label.text()
        # after the run, taller than the panel: every wrapped line is there, none cut off
        for _ in range(5):  # layout requests are posted events, one layout level at a time
            qgis_app.processEvents()
        for label in (panel.product_label, panel.device_label, panel.notes_label, panel.warnings_label):
            assert label.height() >= label.heightForWidth(label.width()), label.text()
    finally:
        panel.teardown()


def test_toolbox_mosaics_more_dem_tiles_with_the_dem(provider, product, tmp_path):
    """The DEM cut in two: DEM = one half, DEM_TILES = the other gives the stack of the whole DEM."""
    import processing

    from tests.rasters import cut_tiles

    archive, dem, _ = product
    with rasterio.open(dem) as src:
        rows, cols = src.height, src.width
    first, second = cut_tiles(dem, tmp_path / "tiles", [0, rows // 2, rows], [0, cols])
    whole = processing.run(
        "landslide:stack", {"PRODUCT": str(archive), "DEM": str(dem), "OUTPUT": str(tmp_path / "a.tif")}
    )
    tiled = processing.run(
        "landslide:stack",
        {"PRODUCT": str(archive), "DEM": first, "DEM_TILES": [second], "OUTPUT": str(tmp_path / "b.tif")},
    )
    with rasterio.open(whole["OUTPUT"]) as a, rasterio.open(tiled["OUTPUT"]) as b:
        np.testing.assert_array_equal(a.read(), b.read())


def _dock_run(panel, qgis_app) -> None:
    assert panel.start_run() is not None, panel.status_label.text()
    deadline = time.monotonic() + 120
    while panel.task is not None and time.monotonic() < deadline:
        qgis_app.processEvents()
        time.sleep(0.02)
    assert panel.task is None, "the run did not finish in time"


def test_dock_cloud_classes_and_dem_tiles_map_as_the_toolbox_does(
    qgis_app, qgis_iface, qgis_new_project, provider, product, tmp_path
):
    """The dock with the DEM cut in two (DEM + a further tile) and only class 9 masked maps exactly what the
    Toolbox maps from the whole DEM with class 9; its masked share per class is shown after the run."""
    import json

    import processing
    from qgis.core import QgsProject, QgsRasterLayer

    from landslide_engine.options import DEFAULT_MASK_CLASSES, SCL_CLASSES
    from landslide_qgis.gui.dock import LandslideDock
    from tests.rasters import cut_tiles

    archive, dem, scl = product
    with rasterio.open(dem) as src:
        rows, cols = src.height, src.width
    north, south = cut_tiles(dem, tmp_path / "tiles", [0, rows // 2, rows], [0, cols])
    project = QgsProject.instance()
    layers = {name: QgsRasterLayer(path, name) for name, path in (("dem_north", north), ("dem_south", south))}
    assert all(project.addMapLayer(layer) for layer in layers.values())
    panel = LandslideDock(qgis_iface)
    try:
        combo = panel.mask_combo
        assert [combo.itemText(i) for i in range(combo.count())] == [f"{c} {n}" for c, n in SCL_CLASSES.items()]
        assert panel.mask_classes() == list(DEFAULT_MASK_CLASSES)
        for i in range(combo.count()):
            combo.setItemCheckState(i, Qt.CheckState.Checked if combo.itemData(i) == 9 else Qt.CheckState.Unchecked)
        panel.product_widget.setFilePath(str(archive))
        panel.dem_combo.setLayer(layers["dem_north"])
        tiles = panel.dem_tiles_combo
        assert sorted(tiles.itemText(i) for i in range(tiles.count())) == ["dem_north", "dem_south"]
        tiles.setItemCheckState(tiles.findText("dem_south"), Qt.CheckState.Checked)
        panel.device_combo.setCurrentText("cpu")
        panel.output_widget.setFilePath(str(tmp_path))
        _dock_run(panel, qgis_app)
        assert "Done" in panel.status_label.text(), panel.status_label.text()
        assert "cloud high probability" in panel.warnings_label.text()  # the masked share of the chosen class
        assert "cloud medium probability" not in panel.warnings_label.text()
        # a pick made stays when rasters are added (the results)
        assert panel.selected_dem_tile_ids() == [layers["dem_south"].id()]
    finally:
        panel.teardown()
    report = json.loads(next(tmp_path.rglob("run.json")).read_text(encoding="utf-8"))
    assert report["inputs"]["dem"] == [north, south]
    assert report["inputs"]["cloud_mask"]["classes"] == [9]
    toolbox = processing.run(
        "landslide:detect",
        {
            "PRODUCT": str(archive),
            "DEM": str(dem),
            "MASK_CLASSES": [9],
            "DEVICE": "cpu",
            **processing_outputs(tmp_path),
        },
    )
    with (
        rasterio.open(next(tmp_path.rglob("landslides_*/probability.tif"))) as docked,
        rasterio.open(toolbox["OUTPUT_PROBABILITY"]) as boxed,
    ):
        ours, theirs = docked.read(1), boxed.read(1)
        nodata = ours == docked.nodata
    np.testing.assert_array_equal(nodata, theirs == boxed.nodata)
    np.testing.assert_allclose(ours, theirs, atol=1e-6)
    assert nodata[scl == 9].all() and not nodata[scl == 8].any()
    (tmp_path / "tiled").mkdir()
    tiled = processing.run(  # the Toolbox's detect takes the tiles too (the DEM's list is an input, not a path)
        "landslide:detect",
        {
            "PRODUCT": str(archive),
            "DEM": north,
            "DEM_TILES": [south],
            "MASK_CLASSES": [9],
            "DEVICE": "cpu",
            **processing_outputs(tmp_path / "tiled"),
        },
    )
    with rasterio.open(tiled["OUTPUT_PROBABILITY"]) as boxed_tiles:
        np.testing.assert_allclose(boxed_tiles.read(1), theirs, atol=1e-6)


def test_dock_refuses_s2cloudless_on_an_l2a_product(qgis_app, qgis_iface, qgis_new_project, product):
    """The s2cloudless choice reaches the engine: on L2A it refuses with the engine's one line, adding nothing."""
    from qgis.core import QgsProject, QgsRasterLayer

    from landslide_qgis.gui.dock import LandslideDock

    archive, dem, _ = product
    assert QgsProject.instance().addMapLayer(QgsRasterLayer(str(dem), "dem"))
    panel = LandslideDock(qgis_iface)
    try:
        panel.product_widget.setFilePath(str(archive))
        panel.dem_combo.setLayer(QgsProject.instance().mapLayersByName("dem")[0])
        panel.device_combo.setCurrentText("cpu")
        for i in range(panel.mask_combo.count()):
            panel.mask_combo.setItemCheckState(i, Qt.CheckState.Unchecked)
        assert panel.scene_choices([], panel.dem_combo.currentLayer()).mask_classes == []  # none: nothing masked
        panel.mask_combo.setItemCheckState(panel.mask_combo.findData(9), Qt.CheckState.Checked)
        panel.s2cloudless_check.setChecked(True)
        before = set(QgsProject.instance().mapLayers())
        _dock_run(panel, qgis_app)
        assert "s2cloudless needs L1C" in panel.status_label.text()
        assert set(QgsProject.instance().mapLayers()) == before
    finally:
        panel.teardown()
