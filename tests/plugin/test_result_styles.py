"""Results open in QGIS styled: the engine's QML sidecars and GeoPackage style, as an analyst drags them in."""

from __future__ import annotations

import pytest

from tests.qgis_helpers import synthetic_scene, tiny_model_package


@pytest.fixture(scope="module")
def cli_outputs(tmp_path_factory):
    """The outputs of the CLI's predict command, as an analyst would find them on disk."""
    from landslide_engine.cli import main

    folder = tmp_path_factory.mktemp("styles")
    s2, dem = synthetic_scene(folder)
    model = tiny_model_package(folder / "tiny.onnx", threshold=0.3)
    out = folder / "out"
    assert (
        main(
            ["predict", "--s2", str(s2), "--dem", str(dem), "--model", str(model), "--device", "cpu", "--out", str(out)]
        )
        == 0
    )
    return out


def test_cli_rasters_open_styled_from_their_sidecars(qgis_app, cli_outputs):
    from qgis.core import QgsPalettedRasterRenderer, QgsRasterLayer, QgsSingleBandPseudoColorRenderer

    probability = QgsRasterLayer(str(cli_outputs / "probability.tif"), "probability")
    mask = QgsRasterLayer(str(cli_outputs / "landslides.tif"), "mask")
    assert (cli_outputs / "probability.qml").is_file() and (cli_outputs / "landslides.qml").is_file()
    assert isinstance(probability.renderer(), QgsSingleBandPseudoColorRenderer)
    assert probability.opacity() < 1.0
    items = probability.renderer().shader().rasterShaderFunction().colorRampItemList()
    assert items[0].value == 0 and items[0].color.alpha() == 0 and items[-1].value == 1
    # not the opaque black-and-white rectangle a plain uint8 mask opens as
    assert isinstance(mask.renderer(), QgsPalettedRasterRenderer) and mask.opacity() < 1.0
    alpha = {c.value: c.color.alpha() for c in mask.renderer().classes()}
    assert alpha == {0: 0, 1: 255}


def test_cli_polygons_open_outlined_from_the_geopackage_style(qgis_app, cli_outputs):
    from qgis.core import QgsProviderRegistry, QgsVectorLayer
    from qgis.PyQt.QtCore import Qt

    path = str(cli_outputs / "landslides.gpkg")
    # the style table is no layer an analyst is asked to choose
    assert [s.name() for s in QgsProviderRegistry.instance().querySublayers(path)] == ["landslides"]
    polygons = QgsVectorLayer(path, "landslides", "ogr")
    assert polygons.isValid() and polygons.featureCount() >= 1
    symbol_layer = polygons.renderer().symbol().symbolLayer(0)
    assert symbol_layer.brushStyle() == Qt.BrushStyle.NoBrush  # outlined, not filled
    assert symbol_layer.strokeColor().name() == "#ffe600"


def test_toolbox_outputs_take_their_style_along(qgis_app, cli_outputs, tmp_path):
    import shutil

    from qgis.core import QgsPalettedRasterRenderer, QgsRasterLayer, QgsVectorLayer

    from landslide_qgis.toolbox.outputs import place_raster, place_vector

    work = tmp_path / "work"
    shutil.copytree(cli_outputs, work)
    tif = place_raster(work / "landslides.tif", str(tmp_path / "dest" / "my_mask.tif"))
    img = place_raster(work / "probability.tif", str(tmp_path / "dest" / "my_probability.img"))
    geojson = place_vector(work / "landslides.gpkg", str(tmp_path / "dest" / "my_polygons.geojson"))
    assert (tmp_path / "dest" / "my_mask.qml").is_file() and (tmp_path / "dest" / "my_probability.qml").is_file()
    assert isinstance(QgsRasterLayer(tif, "m").renderer(), QgsPalettedRasterRenderer)
    assert QgsRasterLayer(img, "p").renderer().type() == "singlebandpseudocolor"
    assert QgsVectorLayer(geojson, "v", "ogr").featureCount() >= 1  # the polygons, not the style table


def test_result_layers_are_filed_once_in_role_order_wherever_qgis_put_them(qgis_app, qgis_new_project, cli_outputs):
    """The desktop adds a new layer where the last one went, here into the result group itself."""
    from qgis.core import QgsProject, QgsRasterLayer, QgsVectorLayer

    from landslide_qgis.gui.result_layers import MASK, ORDER, POLYGONS, PROBABILITY, insert_in_order, style_layer

    project = QgsProject.instance()
    root = project.layerTreeRoot()
    group = root.insertGroup(0, "Landslides · scene · 2026-11-30 14:05:09")
    make = {
        MASK: lambda: QgsRasterLayer(str(cli_outputs / "landslides.tif"), "mask"),
        POLYGONS: lambda: QgsVectorLayer(str(cli_outputs / "landslides.gpkg"), "polygons", "ogr"),
        PROBABILITY: lambda: QgsRasterLayer(str(cli_outputs / "probability.tif"), "probability"),
    }
    for role in (MASK, PROBABILITY, POLYGONS):  # Processing's order is its own
        layer = make[role]()
        style_layer(layer, role)
        assert project.addMapLayer(layer, False)
        (root if role == MASK else group).insertLayer(0, layer)  # first at the top, then inside the group
        insert_in_order(project, group, layer)
    assert [node.layer().name() for node in root.findLayers()] == ["polygons", "mask", "probability"]
    assert [node.layer().customProperty("landslide_mapper/role") for node in group.findLayers()] == list(ORDER)
    assert len(project.mapLayers()) == 3  # a moved layer stays in the project


def test_qgis_reads_the_rasters_pixel_for_pixel_as_the_engine_wrote_them(qgis_app, cli_outputs):
    """The probability (ZSTD, no predictor) and the mask (deflate) decode in this QGIS's GDAL to the written values."""
    import numpy as np
    import rasterio
    from qgis.core import QgsRasterLayer

    for name, dtype in (("probability.tif", np.float32), ("landslides.tif", np.uint8)):
        layer = QgsRasterLayer(str(cli_outputs / name), name)
        assert layer.isValid(), name
        provider = layer.dataProvider()
        block = provider.block(1, provider.extent(), provider.xSize(), provider.ySize())
        got = np.frombuffer(bytes(block.data()), dtype=dtype).reshape(provider.ySize(), provider.xSize())
        with rasterio.open(cli_outputs / name) as src:
            written = src.read(1)
        assert got.tobytes() == written.tobytes(), name
        assert provider.sourceNoDataValue(1) == src.nodata
