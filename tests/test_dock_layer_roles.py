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
