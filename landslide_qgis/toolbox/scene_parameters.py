"""The scene inputs that ``landslide:detect`` and ``landslide:stack`` share, defined and read once.

Both algorithms read the same Sentinel-2 layers, DEM, slope, band map, reflectance scale
and extent, so that whatever one accepts the other accepts too. The parameters are
declared here and read into :class:`~landslide_qgis.engine_request.SceneChoices`.
"""

from __future__ import annotations

from qgis.core import (
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFile,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from landslide_engine import options
from landslide_engine.options import BASELINE_OFFSETS, DEFAULT_MASK_CLASSES, REFLECTANCE_SCALES
from landslide_qgis.engine_request import (
    DEM_TILES_HELP,
    MASK_CLASS_LABELS,
    MASK_CLASSES_HELP,
    S2CLOUDLESS_HELP,
    SceneChoices,
    dem_input,
    request_defaults,
)
from landslide_qgis.toolbox.model_parameters import named_choice

SENTINEL2 = "SENTINEL2"
DEM_TILES = "DEM_TILES"
PRODUCT = "PRODUCT"
MASK_CLASSES = "MASK_CLASSES"
S2CLOUDLESS = "S2CLOUDLESS"
DEM = "DEM"
SLOPE = "SLOPE"
EXTENT = "EXTENT"
REFLECTANCE_SCALE = "REFLECTANCE_SCALE"
BASELINE_OFFSET = "BASELINE_OFFSET"
BAND_MAP = "BAND_MAP"

# the engine's help for the scale option (the CLI's too), as a sentence
REFLECTANCE_SCALE_HELP = options.REFLECTANCE_SCALE_HELP[0].upper() + options.REFLECTANCE_SCALE_HELP[1:] + "."
BASELINE_OFFSET_HELP = options.BASELINE_OFFSET_HELP[0].upper() + options.BASELINE_OFFSET_HELP[1:] + "."
PRODUCT_HELP = (
    "A Sentinel-2 product as downloaded: a SAFE .zip, the MTD_MSIL1C.xml / MTD_MSIL2A.xml of a SAFE folder, or "
    "a STAC item (.json). Its bands, processing baseline, offsets and cloud mask come from its metadata. "
    "Layers given as well replace the product's bands of the same name."
)
PRODUCT_FILTER = "Sentinel-2 products (*.zip *.xml *.json *.SAFE);;All files (*)"
BAND_MAP_HELP = (
    "Names the Sentinel-2 bands the descriptions and file names do not identify, as BAND=SOURCE pairs "
    "separated by commas: a band number of the only input (B2=1), a file (B8=nir.tif) or both (B4=scene.tif:3)."
)


def add_scene_parameters(algorithm: QgsProcessingAlgorithm) -> list[QgsProcessingParameterDefinition]:
    """Add the product, Sentinel-2 layers, DEM and slope to ``algorithm``; return extent, reflectance scale,
    baseline offset, band map, mask classes and further DEM tiles.

    The caller adds those after its own main parameters (all but the extent as advanced ones,
    :func:`add_advanced`), which keeps the dialog's main section short.
    """
    product = QgsProcessingParameterFile(
        PRODUCT, "Sentinel-2 product (SAFE zip or MTD file, STAC item)", optional=True, fileFilter=PRODUCT_FILTER
    )
    product.setHelp(PRODUCT_HELP)
    algorithm.addParameter(product)
    s2 = QgsProcessingParameterMultipleLayers(
        SENTINEL2, "Sentinel-2 layer(s)", QgsProcessing.SourceType.TypeRaster, optional=True
    )
    s2.setHelp("One multi-band Sentinel-2 L1C layer, or one single-band layer per band (or a product above).")
    algorithm.addParameter(s2)
    dem = QgsProcessingParameterRasterLayer(DEM, "DEM (elevation in metres)")
    dem.setHelp("One band of elevations in metres, any CRS and resolution; it is warped onto the Sentinel-2 grid.")
    algorithm.addParameter(dem)
    slope = QgsProcessingParameterRasterLayer(SLOPE, "Slope (degrees)", optional=True)
    slope.setHelp("Optional; when empty, slope is computed from the DEM with Horn's method.")
    algorithm.addParameter(slope)
    tiles = QgsProcessingParameterMultipleLayers(
        DEM_TILES, "More DEM tiles (mosaicked with the DEM)", QgsProcessing.SourceType.TypeRaster, optional=True
    )
    tiles.setHelp(DEM_TILES_HELP)
    return [*reading_parameters(), tiles]


def reading_parameters() -> list[QgsProcessingParameterDefinition]:
    """Extent, reflectance scale, baseline offset, band map and cloud mask: how any scene is read, for the caller
    to add."""
    extent = QgsProcessingParameterExtent(EXTENT, "Process only this extent", optional=True)
    extent.setHelp("Limits the run to part of the scene; in any CRS.")
    default_scale = request_defaults().get("reflectance_scale")
    scale = named_choice(
        REFLECTANCE_SCALE, "Sentinel-2 reflectance scale", REFLECTANCE_SCALES, default_scale, REFLECTANCE_SCALE_HELP
    )
    default_offset = str(request_defaults().get("baseline_offset"))
    offset = named_choice(
        BASELINE_OFFSET, "Sentinel-2 baseline offset (DN)", BASELINE_OFFSETS, default_offset, BASELINE_OFFSET_HELP
    )
    band_map = QgsProcessingParameterString(BAND_MAP, "Band map (when bands cannot be identified)", optional=True)
    band_map.setHelp(BAND_MAP_HELP)
    codes = list(MASK_CLASS_LABELS)
    mask = QgsProcessingParameterEnum(
        MASK_CLASSES,
        "Cloud mask: classes made no data",
        options=list(MASK_CLASS_LABELS.values()),
        allowMultiple=True,
        defaultValue=[codes.index(c) for c in DEFAULT_MASK_CLASSES],
        optional=True,
    )
    mask.setHelp(MASK_CLASSES_HELP)
    s2cloudless = QgsProcessingParameterBoolean(
        S2CLOUDLESS, "Find clouds with s2cloudless (L1C)", defaultValue=False, optional=True
    )
    s2cloudless.setHelp(S2CLOUDLESS_HELP)
    return [extent, scale, offset, band_map, mask, s2cloudless]


def add_advanced(algorithm: QgsProcessingAlgorithm, parameters: list[QgsProcessingParameterDefinition]) -> None:
    """Add ``parameters`` to ``algorithm`` folded under the dialog's *Advanced Parameters*."""
    for parameter in parameters:
        parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
        algorithm.addParameter(parameter)


def scene_choices(algorithm: QgsProcessingAlgorithm, parameters: dict, context: QgsProcessingContext) -> SceneChoices:
    """The scene parameters of a run as :class:`SceneChoices`."""
    s2 = [layer.source() for layer in algorithm.parameterAsLayerList(parameters, SENTINEL2, context)]
    product = algorithm.parameterAsFile(parameters, PRODUCT, context) or None
    if not s2 and not product:
        raise QgsProcessingException("SENTINEL2: select a Sentinel-2 product or at least one Sentinel-2 raster layer")
    dem = algorithm.parameterAsRasterLayer(parameters, DEM, context)
    if dem is None:
        raise QgsProcessingException(algorithm.invalidRasterError(parameters, DEM))
    slope = algorithm.parameterAsRasterLayer(parameters, SLOPE, context)
    tiles = [layer.source() for layer in algorithm.parameterAsLayerList(parameters, DEM_TILES, context)]
    return SceneChoices(
        s2=s2,
        dem=dem_input(dem.source(), tiles),
        slope=slope.source() if slope is not None else None,
        product=product,
        **reading_choices(algorithm, parameters, context),
    )


def reading_choices(algorithm: QgsProcessingAlgorithm, parameters: dict, context: QgsProcessingContext) -> dict:
    """The :func:`reading_parameters` of a run, as :class:`SceneChoices` fields."""
    extent, extent_crs = _extent(algorithm, parameters, context)
    return {
        "band_map": algorithm.parameterAsString(parameters, BAND_MAP, context),
        "reflectance_scale": algorithm.parameterAsEnumString(parameters, REFLECTANCE_SCALE, context) or None,
        "baseline_offset": algorithm.parameterAsEnumString(parameters, BASELINE_OFFSET, context) or None,
        "extent": extent,
        "extent_crs": extent_crs,
        "mask_classes": _mask_classes(algorithm, parameters, context),
        "s2cloudless": algorithm.parameterAsBoolean(parameters, S2CLOUDLESS, context),
    }


def _mask_classes(algorithm: QgsProcessingAlgorithm, parameters: dict, context: QgsProcessingContext) -> list[int]:
    """The SCL codes chosen (none chosen: nothing masked; left unset: the parameter's default, the engine's)."""
    codes = list(MASK_CLASS_LABELS)
    return [codes[i] for i in algorithm.parameterAsEnums(parameters, MASK_CLASSES, context)]


def _extent(
    algorithm: QgsProcessingAlgorithm, parameters: dict, context: QgsProcessingContext
) -> tuple[tuple[float, float, float, float] | None, str | None]:
    if parameters.get(EXTENT) in (None, ""):
        return None, None
    rect = algorithm.parameterAsExtent(parameters, EXTENT, context)
    if rect.isNull() or rect.isEmpty():
        return None, None
    crs = algorithm.parameterAsExtentCrs(parameters, EXTENT, context)
    crs_text = (crs.authid() or crs.toWkt()) if crs.isValid() else None
    return (rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum()), crs_text
