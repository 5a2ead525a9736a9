"""``landslide:detect_region``: several Sentinel-2 scenes in, regional mosaics and one polygon layer out.

The engine's batch (local executor) does everything: each scene is mapped into ``FOLDER/<scene id>/`` as
``landslide:detect`` maps it, the mosaics are VRTs over those outputs (where scenes overlap the clearer scene
wins), and the polygons are traced once over the region. This class translates the parameters (shared with
``landslide:detect``) and reports each scene's outcome; a scene that fails is reported and the others go on.
"""

from __future__ import annotations

from qgis.core import (
    QgsMapLayer,
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingOutputFile,
    QgsProcessingOutputNumber,
    QgsProcessingOutputRasterLayer,
    QgsProcessingOutputVectorLayer,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterRasterLayer,
    QgsProcessingUtils,
)

from landslide_qgis.engine_request import SceneChoices, batch_request, qgis_wording
from landslide_qgis.gui.result_layers import MASK, POLYGONS, PROBABILITY, run_time
from landslide_qgis.toolbox import model_parameters, result_postprocessor, run_parameters, scene_parameters
from landslide_qgis.toolbox.engine_bridge import engine_callbacks, engine_errors, engine_info, engine_warn


class DetectRegionAlgorithm(QgsProcessingAlgorithm):
    SCENES = "SCENES"
    DEM = "DEM"
    SLOPE = scene_parameters.SLOPE
    OUTPUT_FOLDER = "OUTPUT_FOLDER"
    OUTPUT_PROBABILITY = "OUTPUT_PROBABILITY"
    OUTPUT_MASK = "OUTPUT_MASK"
    OUTPUT_POLYGONS = "OUTPUT_POLYGONS"
    OUTPUT_SCENES = "OUTPUT_SCENES"
    SCENES_MAPPED = "SCENES_MAPPED"
    SCENES_FAILED = "SCENES_FAILED"
    N_LANDSLIDES = "N_LANDSLIDES"
    LANDSLIDE_AREA_M2 = "LANDSLIDE_AREA_M2"
    REPORT = "REPORT"

    def name(self) -> str:
        return "detect_region"

    def displayName(self) -> str:
        return "Detect landslides over a region (several scenes)"

    def group(self) -> str:
        return "Detection"

    def groupId(self) -> str:
        return "detection"

    def shortHelpString(self) -> str:
        return (
            "Maps landslides in several Sentinel-2 scenes (the tiles of an event) with one model and joins the "
            "results into one regional map.\n\n"
            "Scenes: one file per scene (a multi-band Sentinel-2 raster, or a product: SAFE folder, zip or MTD "
            "file, STAC item); a scene that cannot be read fails alone. DEM: the region's "
            "DEM, one layer or its tiles; each scene reads the part it covers. The model and run options are "
            "those of 'Detect landslides'.\n\n"
            "Output folder: one sub-folder per scene with the outputs of 'Detect landslides'; probability.vrt and "
            "landslides.vrt, mosaics over them (where scenes overlap, the clearer scene wins: the larger share "
            "of pixels with data, then the newer date; where it has no data the next scene shows through); "
            "scenes.vrt, which scene each pixel comes from; landslides.gpkg, the polygons traced over the whole "
            "region (a landslide cut by one scene's edge is one polygon), each with the scene it came from; "
            "batch.json, what became of each scene.\n\n"
            "A scene that cannot be mapped is reported and the others go on. Running again into the same folder "
            "skips the scenes already mapped."
        )

    def helpUrl(self) -> str:
        return "https://github.com/landslide-mapper/landslide-qgis#readme"

    def createInstance(self) -> DetectRegionAlgorithm:
        return DetectRegionAlgorithm()

    def initAlgorithm(self, config=None) -> None:
        # Files, not layers: QGIS opens every layer of a layer list to check it before the run starts, so one
        # scene that GDAL cannot open (QGIS 3.44 with GDAL 3.9+ refuses a truncated file there) would stop all of
        # them with "Incorrect parameter value", naming none. As files, each scene is read by its own mapping,
        # which fails alone and says why; and a product (SAFE folder or zip, STAC item) is a scene too.
        scenes = QgsProcessingParameterMultipleLayers(
            self.SCENES, "Sentinel-2 scenes (one file or product each)", QgsProcessing.SourceType.TypeFile
        )
        scenes.setHelp(
            "One multi-band Sentinel-2 raster or one product (SAFE folder, zip or MTD file, STAC item) per scene; "
            "their names name the scene folders."
        )
        self.addParameter(scenes)
        dem = QgsProcessingParameterMultipleLayers(
            self.DEM, "DEM of the region (one layer or its tiles)", QgsProcessing.SourceType.TypeRaster
        )
        dem.setHelp("Elevation in metres, any CRS; several tiles are mosaicked for each scene.")
        self.addParameter(dem)
        slope = QgsProcessingParameterRasterLayer(self.SLOPE, "Slope of the region (degrees)", optional=True)
        slope.setHelp("Optional; when empty, slope is computed from the DEM with Horn's method for each scene.")
        self.addParameter(slope)
        for parameter in model_parameters.parameters("A built-in model or a package from the models folder."):
            self.addParameter(parameter)
        tta, min_area, precision = run_parameters.add_run_parameters(self)
        extent, *reading = scene_parameters.reading_parameters()
        self.addParameter(extent)
        scene_parameters.add_advanced(self, [tta, min_area, *reading, precision])
        self.addParameter(QgsProcessingParameterFolderDestination(self.OUTPUT_FOLDER, "Output folder"))

        self.addOutput(QgsProcessingOutputRasterLayer(self.OUTPUT_PROBABILITY, "Landslide probability (mosaic)"))
        self.addOutput(QgsProcessingOutputRasterLayer(self.OUTPUT_MASK, "Landslide mask (mosaic)"))
        self.addOutput(QgsProcessingOutputVectorLayer(self.OUTPUT_POLYGONS, "Landslide polygons (region)"))
        self.addOutput(QgsProcessingOutputRasterLayer(self.OUTPUT_SCENES, "Scene of each pixel (mosaic)"))
        self.addOutput(QgsProcessingOutputNumber(self.SCENES_MAPPED, "Scenes mapped (now or before)"))
        self.addOutput(QgsProcessingOutputNumber(self.SCENES_FAILED, "Scenes that failed"))
        self.addOutput(QgsProcessingOutputNumber(self.N_LANDSLIDES, "Number of landslides"))
        self.addOutput(QgsProcessingOutputNumber(self.LANDSLIDE_AREA_M2, "Total landslide area (m²)"))
        self.addOutput(QgsProcessingOutputFile(self.REPORT, "Batch report (JSON)"))

    def processAlgorithm(self, parameters, context, feedback):
        with engine_errors():  # a missing package becomes the install instructions
            from landslide_engine.batch import run_batch

        scene_files = self._scene_paths(parameters, context)
        dems = [layer.source() for layer in self.parameterAsLayerList(parameters, self.DEM, context)]
        if not scene_files:
            raise QgsProcessingException(f"{self.SCENES}: select at least one Sentinel-2 scene")
        if not dems:
            raise QgsProcessingException(f"{self.DEM}: select the DEM (one layer or its tiles)")
        slope = self.parameterAsRasterLayer(parameters, self.SLOPE, context)
        model_path = model_parameters.chosen_model(self, parameters, context)
        scene = SceneChoices(
            s2=scene_files,
            dem=dems,
            slope=slope.source() if slope is not None else None,
            **scene_parameters.reading_choices(self, parameters, context),
        )
        run = run_parameters.run_choices(self, parameters, context, str(model_path))
        folder = self.parameterAsString(parameters, self.OUTPUT_FOLDER, context)
        feedback.pushInfo(f"Model: {model_path}")
        progress, cancelled = engine_callbacks(feedback)
        with engine_errors():
            result = run_batch(
                batch_request(scene, run, folder),
                progress=progress,
                cancelled=cancelled,
                warn=engine_warn(feedback),
                info=engine_info(feedback),
            )
        for outcome in result.outcomes:
            if outcome.status == "failed":
                feedback.reportError(f"{outcome.scene_id}: failed: {qgis_wording(outcome.reason)}", fatalError=False)
            else:
                feedback.pushInfo(f"{outcome.scene_id}: {outcome.status}, {outcome.landslides} landslide(s)")
        regional = result.regional
        if regional is None:
            raise QgsProcessingException(f"no scene could be mapped; see {result.report}")
        self._load_on_completion(context, regional, model_path.stem, run_time())
        return {
            self.OUTPUT_FOLDER: folder,
            self.OUTPUT_PROBABILITY: str(regional.probability),
            self.OUTPUT_MASK: str(regional.mask),
            self.OUTPUT_POLYGONS: str(regional.polygons),
            self.OUTPUT_SCENES: str(regional.scenes),
            self.SCENES_MAPPED: len(result.outcomes) - len(result.failed),
            self.SCENES_FAILED: len(result.failed),
            self.N_LANDSLIDES: regional.landslides,
            self.LANDSLIDE_AREA_M2: regional.landslide_area_m2,
            self.REPORT: str(result.report),
        }

    def _scene_paths(self, parameters: dict, context: QgsProcessingContext) -> list[str]:
        """The scenes' paths; a layer given instead (a layer object from Python, a project layer's id) stands for
        its source, as it did when SCENES was a list of layers."""
        given = parameters.get(self.SCENES)
        values = given if isinstance(given, (list, tuple)) else [given]
        sources = [value.source() if isinstance(value, QgsMapLayer) else value for value in values]
        paths = self.parameterAsFileList({self.SCENES: sources}, self.SCENES, context)
        layers = [QgsProcessingUtils.mapLayerFromString(path, context, False) for path in paths]  # never loads
        return [path if layer is None else layer.source() for path, layer in zip(paths, layers, strict=True)]

    def _load_on_completion(self, context: QgsProcessingContext, regional, model: str, when: str) -> None:
        """The mosaics and polygons load styled in one group, as ``landslide:detect``'s results do."""
        project = context.project()
        if project is None:  # qgis_process, or a model's child step: nothing to load into
            return
        outputs = {PROBABILITY: str(regional.probability), MASK: str(regional.mask), POLYGONS: str(regional.polygons)}
        names = {PROBABILITY: self.OUTPUT_PROBABILITY, MASK: self.OUTPUT_MASK, POLYGONS: self.OUTPUT_POLYGONS}
        for role, path in outputs.items():
            context.addLayerToLoadOnCompletion(path, QgsProcessingContext.LayerDetails(role, project, names[role]))
        result_postprocessor.attach(context, outputs, "region", model, when)
