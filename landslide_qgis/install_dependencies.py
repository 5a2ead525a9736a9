"""Install the plugin's Python dependencies into a folder of its own, with QGIS's own Python.

Run headless by an administrator (or a test) with the Python that runs QGIS::

    python3 <plugin folder>/install_dependencies.py            # what detection lacks (onnxruntime, rasterio)
    python3 <plugin folder>/install_dependencies.py --torch    # also PyTorch, for .pt models and training

or from the plugin's "Install Python dependencies" dialog, which runs the same steps. Exit 0 when the packages
import afterwards, 1 when the installation failed (one line on stderr saying why), 2 for bad arguments.

Why this shape (the first pain users of deep-learning QGIS plugins report is installing their packages):

* ``pip install --target`` into a plugin-owned folder next to the profile's plugins
  (``<profile>/python/landslide_mapper_packages/py3XY``), one folder per Python version because wheels are built
  for one. Never ``--user`` (PEP 668 refuses it on current Linux distributions, and it leaks into every other
  Python of the user), never the system or QGIS's installation folder (no admin rights needed, nothing of
  QGIS's is replaced, uninstalling is deleting the folder). A plugin update replaces the plugin folder but keeps
  this one.
* What to install is resolved first against the interpreter's own packages (``pip install --dry-run
  --report``), so a package QGIS already has is used, not downloaded again, and numpy is pinned to the version
  QGIS's GDAL was built against: a dependency that needs another numpy fails to resolve, saying so, instead of
  shadowing it.
* The folder is appended to ``sys.path`` (:func:`add_to_sys_path`, called when the plugin loads), after
  everything QGIS ships, so it can add packages but never replace one.
* Inside QGIS ``sys.executable`` is the QGIS program on Windows and macOS; :func:`qgis_python` finds the
  interpreter next to it and checks that it is the same Python version as the running one.

Only the standard library is used here: the file runs before any dependency is present, and without QGIS.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

PACKAGES_ENV = "LANDSLIDE_MAPPER_PACKAGES"
"""Environment variable that overrides the packages folder (administrators, tests)."""
PACKAGES_FOLDER = "landslide_mapper_packages"
INDEX = "https://pypi.org/simple"
# the modules the engine imports, and the pip name of each
RUNTIME = {"onnxruntime": "onnxruntime"}
RASTERS = {"rasterio": "rasterio"}
TORCH = {"torch": "torch", "segmentation_models_pytorch": "segmentation-models-pytorch"}
# pip's own variables that would send the install elsewhere or refuse it
# no console window flashing up for each pip call when QGIS runs on Windows
_NO_WINDOW = getattr(subprocess, "CREATE_NO_WINDOW", 0)
_PIP_ENV_REMOVED = ("PIP_USER", "PIP_TARGET", "PIP_PREFIX", "PIP_ROOT", "PIP_REQUIRE_VIRTUALENV", "PYTHONHOME")


class InstallError(RuntimeError):
    """The installation failed; the message is one line saying why and what to do."""


def python_tag() -> str:
    return f"py{sys.version_info.major}{sys.version_info.minor}"


def packages_dir(plugin_dir: Path | None = None) -> Path:
    """The plugin-owned folder the packages go to, for the running Python version.

    ``<profile>/python/plugins/landslide_qgis`` -> ``<profile>/python/landslide_mapper_packages/py3XY``; a plugin
    outside a ``plugins`` folder (a source checkout) uses the user's data folder. ``$LANDSLIDE_MAPPER_PACKAGES``
    overrides both.
    """
    if os.environ.get(PACKAGES_ENV):
        return Path(os.environ[PACKAGES_ENV]) / python_tag()
    plugin_dir = (plugin_dir or Path(__file__).resolve().parent).resolve()
    if plugin_dir.parent.name == "plugins":
        return plugin_dir.parent.parent / PACKAGES_FOLDER / python_tag()
    if sys.platform.startswith("win"):
        base = Path(os.environ.get("APPDATA", Path.home()))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
    return base / "landslide-mapper" / PACKAGES_FOLDER / python_tag()


def add_to_sys_path(plugin_dir: Path | None = None) -> Path | None:
    """Append the packages folder to ``sys.path`` when it exists (after QGIS's own packages); returns it."""
    folder = packages_dir(plugin_dir)
    if not folder.is_dir():
        return None
    if str(folder) not in sys.path:
        sys.path.append(str(folder))
        importlib.invalidate_caches()
    return folder


def _candidates() -> list[Path]:
    """Where QGIS's Python interpreter may be, most likely first."""
    exe = Path(sys.executable) if sys.executable else None
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    found: list[Path] = []
    if exe is not None and re.fullmatch(r"python[0-9.]*(\.exe)?", exe.name, re.IGNORECASE):
        found.append(exe)  # a plain interpreter (Linux, or this script run headless)
    for prefix in dict.fromkeys((sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix)):
        root = Path(prefix)
        if sys.platform.startswith("win"):
            # OSGeo4W and the standalone installer: <root>\apps\Python3XY\python.exe; sys.executable is qgis-bin.exe
            found += [root / "python.exe", root / "python3.exe"]
        else:
            # Linux: /usr/bin/python3.X; macOS QGIS.app: .../Python.framework/Versions/3.X/bin/python3.X
            found += [root / "bin" / f"python{version}", root / "bin" / "python3"]
    if exe is not None:
        # macOS QGIS.app keeps an interpreter next to the QGIS program as well
        found += [exe.parent / "bin" / f"python{version}", exe.parent / "bin" / "python3", exe.parent / "python3"]
    return [p for p in dict.fromkeys(found) if p.is_file()]


def qgis_python() -> Path:
    """The interpreter of the running Python (QGIS's own), checked to be the same version; InstallError if none."""
    wanted = f"{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in _candidates():
        try:
            proc = subprocess.run(
                [str(candidate), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True,
                text=True,
                timeout=60,
                env=pip_environment(),
                creationflags=_NO_WINDOW,
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if proc.returncode == 0 and proc.stdout.strip() == wanted:
            return candidate
    raise InstallError(
        f"cannot find the Python {wanted} interpreter that runs QGIS (looked next to {sys.executable} and in "
        f"{sys.prefix}); run install_dependencies.py with it by hand"
    )


def pip_environment() -> dict[str, str]:
    """The environment for pip: the caller's (proxy, certificates, index settings) without what would redirect it."""
    env = {k: v for k, v in os.environ.items() if k not in _PIP_ENV_REMOVED and not k.startswith("PYTHONPATH")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def missing_modules(torch: bool = False) -> dict[str, str]:
    """``{module: pip name}`` of what the engine lacks in this Python (with ``torch``: also PyTorch)."""
    wanted = {**RASTERS, **RUNTIME, **(TORCH if torch else {})}
    missing = {}
    for module, name in wanted.items():
        try:
            importlib.import_module(module)
        except Exception:  # a broken wheel raises OSError (DLL) or AttributeError as well as ImportError
            missing[module] = name
    return missing


@dataclass(frozen=True)
class Plan:
    """One installation: the interpreter, the folder, the requested packages and the pins that keep QGIS's."""

    python: Path
    target: Path
    packages: tuple[str, ...]
    constraints: tuple[str, ...]

    def describe(self) -> str:
        return f"{' '.join(self.packages)} into {self.target} with {self.python}"


def make_plan(packages: Sequence[str], target: Path | None = None, python: Path | None = None) -> Plan:
    """What :func:`install` will run; numpy (when QGIS has it) is pinned to QGIS's version."""
    constraints = []
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        constraints.append(f"numpy=={importlib.metadata.version('numpy')}")
    return Plan(python or qgis_python(), target or packages_dir(), tuple(packages), tuple(constraints))


def _run_pip(
    plan: Plan, args: Sequence[str], constraints_file: Path, on_line: Callable[[str], None]
) -> tuple[int, str]:
    """Run ``python -m pip args`` streaming its output to ``on_line``; returns the exit code and the output."""
    command = [str(plan.python), "-m", "pip", *args, "-c", str(constraints_file)]
    env = pip_environment()
    # the folder's earlier installs count as installed, so a second run installs nothing again
    env["PYTHONPATH"] = str(plan.target)
    try:
        proc = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
            errors="replace",
            env=env,
            creationflags=_NO_WINDOW,
        )
    except OSError as exc:
        raise InstallError(f"cannot run {plan.python}: {exc.strerror or exc}") from None
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip()
        lines.append(line)
        on_line(line)
    return proc.wait(), "\n".join(lines)


def _pip(plan: Plan, args: Sequence[str], constraints_file: Path, on_line: Callable[[str], None]) -> str:
    """:func:`_run_pip`, InstallError (one line) when pip fails."""
    code, output = _run_pip(plan, args, constraints_file, on_line)
    if code != 0:
        raise InstallError(explain_pip_failure(output, plan))
    return output


def explain_pip_failure(output: str, plan: Plan) -> str:
    """pip's failure as one line: offline, proxy or certificate, no wheel for this Python, or pip's own error."""
    python = f"Python {sys.version_info.major}.{sys.version_info.minor} on {sysconfig.get_platform()}"
    if "No module named pip" in output:
        return f"pip is not installed for {plan.python} (Debian/Ubuntu: sudo apt install python3-pip)"
    if re.search(r"CERTIFICATE_VERIFY_FAILED|SSLError|certificate verify failed", output):
        return (
            "the package index's TLS certificate is not trusted (a company proxy that inspects TLS?): "
            "set PIP_CERT to your organisation's CA bundle, or install on another machine"
        )
    if re.search(r"ProxyError|Tunnel connection failed|407 Proxy", output):
        return "the proxy refused the connection to the package index: set HTTPS_PROXY (with credentials) for QGIS"
    if re.search(
        r"Temporary failure in name resolution|Name or service not known|getaddrinfo failed|nodename nor servname|"
        r"Network is unreachable|No route to host|Failed to establish a new connection|timed out",
        output,
    ):
        return f"cannot reach the package index ({INDEX}): this computer seems offline or the index is blocked"
    if "ResolutionImpossible" in output or "conflicting dependencies" in output:
        pins = ", ".join(plan.constraints) or "the installed packages"
        return f"{' '.join(plan.packages)} cannot be installed next to QGIS's {pins}: pip found no compatible versions"
    match = re.search(r"No matching distribution found for ([^\s]+)", output)
    if match:
        return f"no {match.group(1)} package (wheel) exists for {python}"
    errors = [line.strip() for line in output.splitlines() if line.strip().startswith("ERROR:")]
    return errors[-1].removeprefix("ERROR:").strip() if errors else output.strip().splitlines()[-1]


def _to_install(plan: Plan, constraints_file: Path, on_line: Callable[[str], None]) -> list[str]:
    """``name==version`` of every package the request needs that this Python does not already have."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        args = ["install", "--dry-run", "--quiet", "--report", str(report), *plan.packages]
        code, output = _run_pip(plan, args, constraints_file, on_line)
        if code != 0 and "externally-managed-environment" in output:
            # pip < 23.1 applies PEP 668 to dry runs as well: resolve into an empty folder instead (every
            # dependency is listed then) and leave out below what this Python has at that very version
            code, output = _run_pip(plan, [*args, "--target", str(Path(tmp) / "empty")], constraints_file, on_line)
        if code != 0:
            raise InstallError(explain_pip_failure(output, plan))
        data = json.loads(report.read_text(encoding="utf-8"))
    needed = []
    for item in data.get("install", []):
        name, version = item["metadata"]["name"], item["metadata"]["version"]
        try:
            if importlib.metadata.version(name) == version:
                continue
        except importlib.metadata.PackageNotFoundError:
            pass
        needed.append(f"{name}=={version}")
    return needed


def install(plan: Plan, on_line: Callable[[str], None] = print) -> list[str]:
    """Install ``plan``; returns the ``name==version`` installed (empty when all were present). InstallError."""
    plan.target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        constraints_file = Path(tmp) / "constraints.txt"
        constraints_file.write_text("".join(c + "\n" for c in plan.constraints), encoding="utf-8")
        on_line(f"resolving {' '.join(plan.packages)} against {plan.python}")
        needed = _to_install(plan, constraints_file, on_line)
        if not needed:
            on_line("everything is installed already")
            return []
        on_line("installing " + " ".join(needed))
        progress = ["--progress-bar", "raw"] if _pip_supports_raw_progress(plan) else []
        _pip(
            plan,
            ["install", "--target", str(plan.target), "--no-deps", "--upgrade", *progress, *needed],
            constraints_file,
            on_line,
        )
    # console scripts (f2py, onnxruntime_test, torchrun) are of no use here and would only confuse
    shutil.rmtree(plan.target / "bin", ignore_errors=True)
    return needed


def _pip_supports_raw_progress(plan: Plan) -> bool:
    """``--progress-bar raw`` (machine-readable "Progress N of M" lines) exists from pip 24.1."""
    proc = subprocess.run(
        [str(plan.python), "-m", "pip", "--version"],
        capture_output=True,
        text=True,
        env=pip_environment(),
        creationflags=_NO_WINDOW,
    )
    match = re.match(r"pip (\d+)\.(\d+)", proc.stdout)
    return bool(match) and (int(match.group(1)), int(match.group(2))) >= (24, 1)


def verify(plan: Plan, modules: Sequence[str]) -> None:
    """Import ``modules`` in a fresh interpreter with the folder appended, as the plugin will; InstallError if not."""
    code = (
        "import importlib, sys\n"
        f"sys.path.append({str(plan.target)!r})\n"
        f"for name in {list(modules)!r}:\n"
        "    importlib.import_module(name)\n"
    )
    proc = subprocess.run(
        [str(plan.python), "-c", code], capture_output=True, text=True, env=pip_environment(), creationflags=_NO_WINDOW
    )
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise InstallError(f"installed, but importing {', '.join(modules)} fails: {last}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="install_dependencies.py",
        description="Install Landslide Mapper's Python packages into its own folder, for the Python that runs QGIS.",
    )
    parser.add_argument("--torch", action="store_true", help="also PyTorch (for .pt models and training; large)")
    parser.add_argument("--target", type=Path, help=f"folder to install into (default: {packages_dir()})")
    parser.add_argument("packages", nargs="*", help="pip requirements instead of what the engine lacks")
    args = parser.parse_args(argv)
    add_to_sys_path()
    target = args.target.resolve() if args.target else packages_dir()
    if args.target and str(target) not in sys.path:
        sys.path.append(str(target))
    wanted = {name: name for name in args.packages} if args.packages else missing_modules(torch=args.torch)
    if sys.platform.startswith("linux") and "rasterio" in wanted and not args.packages:
        # a PyPI rasterio brings a second GDAL into the QGIS process, whose symbols clash with QGIS's own
        print(
            "error: on Linux rasterio must come from the OS packages, built on QGIS's GDAL: "
            "sudo apt install python3-rasterio (Debian/Ubuntu), then run this again",
            file=sys.stderr,
        )
        return 1
    if not wanted:
        print(f"Landslide Mapper's packages are importable already (folder: {target})")
        return 0
    modules = [] if args.packages else list(wanted)
    try:
        plan = make_plan(list(wanted.values()), target)
        print(f"installing {plan.describe()}", flush=True)
        install(plan, on_line=lambda line: print(line, flush=True))
        verify(plan, modules)
    except InstallError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"done: {', '.join(wanted.values())} importable (from {target})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
