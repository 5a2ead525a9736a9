"""Which loaded rasters the dock suggests as Sentinel-2 bands, DEM and slope."""

from __future__ import annotations

from landslide_qgis.gui.layer_roles import RasterInfo, suggest_roles


def _info(layer_id: str, name: str, bands: int = 1, descriptions: tuple[str, ...] = ()) -> RasterInfo:
    return RasterInfo(layer_id, name, name, descriptions or ("",) * bands)


def test_single_band_jp2_files_are_suggested_together_with_the_dem_and_slope():
    rasters = [
        _info("b4", "T45RUL_20150425T050649_B04"),
        _info("b3", "T45RUL_20150425T050649_B03"),
        _info("b8a", "T45RUL_20150425T050649_B8A"),
        _info("dem", "ALOSPALSAR_RTC_dem"),
        _info("slope", "slope_deg"),
        _info("ndvi", "ndvi"),
    ]
    suggestion = suggest_roles(rasters)
    assert sorted(suggestion.s2) == ["b3", "b4", "b8a"]
    assert (suggestion.dem, suggestion.slope) == ("dem", "slope")


def test_the_best_described_multiband_layer_wins_and_generic_names_are_not_bands():
    described = tuple(f"B{i:02d}" for i in range(1, 13))
    rasters = [
        _info("generic", "stack", descriptions=("Band 1", "Band 2", "Band 3", "Band 4")),
        _info("s2", "scene_2020", descriptions=described),
        _info("srtm", "AberSRTM_4326"),
    ]
    suggestion = suggest_roles(rasters)
    assert suggestion.s2 == ["s2"]
    assert suggestion.dem == "srtm" and suggestion.slope is None


def test_nothing_recognisable_gives_an_empty_suggestion():
    suggestion = suggest_roles([_info("a", "ndvi"), _info("b", "landcover", bands=3)])
    assert suggestion.s2 == [] and suggestion.dem is None and suggestion.slope is None


def test_result_layers_are_named_after_the_scene_the_model_and_the_time():
    from landslide_qgis.gui.result_layers import group_title, layer_name, scene_name

    # one band per file, as downloaded: the name they share
    bands = [f"T45RUL_20150425T050649_B{b:02d}" for b in (2, 3, 4, 8)]
    assert scene_name(bands) == "T45RUL_20150425T050649"
    assert scene_name(["S2B_MSIL1C_20210527"]) == "S2B_MSIL1C_20210527"
    assert scene_name(["B02", "dem"]) == "B02"  # nothing shared: the first layer's name
    name = layer_name("mask", "T45RUL_20150425T050649", "builtin-unet-plain-w16", "2026-11-30 14:05:09")
    assert name == "mask · T45RUL_20150425T050649 · builtin-unet-plain-w16 · 2026-11-30 14:05:09"
    assert group_title("T45RUL_20150425T050649", "2026-11-30 14:05:09").startswith("Landslides · T45RUL")
