"""libtiff's own messages: off stderr and recorded per thread once a command-line program takes them over.

Each case runs in a fresh Python: the take-over changes the whole process. The write fails for real, under a
file size limit (RLIMIT_FSIZE), as on a full disk.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.paths import ROOT

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_FSIZE and /proc/self/maps are Linux's")

WRITE_ON_A_FULL_DISK = """
import json, resource, signal, sys, threading
sys.path.insert(0, {root!r})
import numpy as np
from osgeo import gdal
gdal.DontUseExceptions()
gdal.SetErrorHandler("CPLQuietErrorHandler")
from landslide_engine import libtiff_messages
if {take_over}:
    libtiff_messages.record()
    libtiff_messages.record()  # a second call changes nothing
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000))
seen = {{}}

def write():
    libtiff_messages.forget()
    dataset = gdal.GetDriverByName("GTiff").Create({path!r}, 300, 300, 1, gdal.GDT_Float32)
    dataset.GetRasterBand(1).WriteArray(np.random.default_rng(0).random((300, 300), np.float32))
    dataset = None
    seen["writer"] = libtiff_messages.first_error()
    seen["gdal_failed"] = gdal.GetLastErrorType() >= gdal.CE_Failure

libtiff_messages.forget()
writer = threading.Thread(target=write)
writer.start()
writer.join()
seen["main"] = libtiff_messages.first_error()
seen["handlers"] = len(libtiff_messages._handlers)
print(json.dumps(seen))
"""


def _write_on_a_full_disk(tmp_path: Path, take_over: bool) -> tuple[dict, str]:
    script = WRITE_ON_A_FULL_DISK.format(root=str(ROOT), take_over=take_over, path=str(tmp_path / "full.tif"))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1]), proc.stderr


def test_the_cause_of_a_failed_write_is_recorded_in_the_writing_thread_and_not_printed(tmp_path):
    seen, stderr = _write_on_a_full_disk(tmp_path, take_over=True)
    assert seen["writer"] == "File too large"
    assert seen["main"] is None  # per thread: the main thread wrote nothing
    assert seen["gdal_failed"]  # GDAL still knows the write failed (its checks of the last error keep working)
    assert seen["handlers"] == 1  # one libtiff in this process, taken over once
    assert stderr.strip() == ""


def test_without_the_take_over_nothing_is_recorded(tmp_path):
    seen, _ = _write_on_a_full_disk(tmp_path, take_over=False)
    assert seen["writer"] is None
    assert seen["gdal_failed"]
