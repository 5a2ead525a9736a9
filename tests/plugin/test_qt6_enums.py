"""QGIS 4 (Qt6) readiness of the plugin's source: scoped enums, Qt only through ``qgis.PyQt``, metadata admits 4.x.

PyQt6 and QGIS 4 drop the unscoped spellings (``Qt.UserRole``, ``QgsProcessing.TypeRaster``); the scoped ones
(``Qt.ItemDataRole.UserRole``, ``QgsProcessing.SourceType.TypeRaster``) also resolve on QGIS 3.22. The source
is parsed with ``ast`` and every ``Class.member`` whose class comes from Qt or QGIS is resolved on the running
QGIS: when the member is an enum value, the attribute chain must name its enum type.
"""

from __future__ import annotations

import ast
import configparser
import enum
import importlib
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("qgis.core")
from qgis.core import Qgis
from qgis.PyQt.QtCore import Qt

from tests.paths import ROOT

# sip.enumtype on PyQt5, enum.EnumType on PyQt6: the metaclass of every Qt enum on this Qt
_QT_ENUM_META = type(Qt.ItemDataRole)

# everything that imports qgis: the plugin, its tests and the screenshot script
SOURCES = sorted(
    p
    for folder in ("landslide_qgis", "tests", "scripts")
    for p in (ROOT / folder).rglob("*.py")
    if "__pycache__" not in p.parts
)


def _qt_qgis_imports(tree: ast.Module) -> dict[str, object]:
    """Names bound by ``from qgis.<...> import Name`` anywhere in the module, resolved to their objects."""
    names: dict[str, object] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "qgis":
            module = importlib.import_module(node.module)
            for alias in node.names:
                obj = getattr(module, alias.name, None)
                if isinstance(obj, type):  # classes only: Qt, QgsProcessing, ...
                    names[alias.asname or alias.name] = obj
    return names


def _is_enum_type(obj: object) -> bool:
    """A sip (PyQt5) enum type or a Python enum (PyQt6, QGIS's own scoped enums)."""
    return isinstance(obj, _QT_ENUM_META) or (isinstance(obj, type) and issubclass(obj, enum.Enum))


def _is_enum_value(obj: object) -> bool:
    return _is_enum_type(type(obj))


def _chain(node: ast.Attribute) -> list[str] | None:
    """``Qt.ItemDataRole.UserRole`` -> ["Qt", "ItemDataRole", "UserRole"]; None when not rooted at a name."""
    parts = [node.attr]
    value = node.value
    while isinstance(value, ast.Attribute):
        parts.append(value.attr)
        value = value.value
    if not isinstance(value, ast.Name):
        return None
    parts.append(value.id)
    return parts[::-1]


def unscoped_enum_accesses(path: Path) -> Iterator[str]:
    """Every ``Owner.member`` in ``path`` where member is an enum value and Owner is not its enum type."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    classes = _qt_qgis_imports(tree)
    for node in ast.walk(tree):
        parts = _chain(node) if isinstance(node, ast.Attribute) else None
        if parts is None or parts[0] not in classes:
            continue
        where = f"{path.name}:{node.lineno}: {'.'.join(parts)}"
        owner = classes[parts[0]]
        for name in parts[1:-1]:
            owner = getattr(owner, name, None)
        if not hasattr(owner, parts[-1]):
            yield f"{where} does not resolve on QGIS {Qgis.QGIS_VERSION}"
            continue
        value = getattr(owner, parts[-1])
        if _is_enum_value(value) and not _is_enum_type(owner):
            yield f"{where} -> {'.'.join(parts[:-1])}.{_enum_name(owner, value)}.{parts[-1]}"


def _enum_name(owner: object, value: object) -> str:
    """The name under which ``owner`` holds the enum type of ``value``: on QGIS >= 3.36 many enums live in
    ``Qgis`` and the class keeps an alias (``QgsProcessing.SourceType`` is ``Qgis.ProcessingSourceType``)."""
    for name in dir(owner):
        if getattr(owner, name, None) is type(value):
            return name
    return type(value).__name__


def test_sources_found():
    names = {p.relative_to(ROOT).as_posix() for p in SOURCES}
    assert "landslide_qgis/gui/dock.py" in names
    assert "landslide_qgis/toolbox/detect_algorithm.py" in names


def test_detector_flags_an_unscoped_enum(tmp_path):
    """The check itself finds what Qt6 rejects and accepts the scoped spelling (so an empty result means something)."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from qgis.PyQt.QtCore import Qt\n"
        "from qgis.core import QgsProcessing\n"
        "a = Qt.UserRole\n"
        "b = Qt.ItemDataRole.UserRole\n"
        "c = QgsProcessing.TypeRaster\n"
        "d = QgsProcessing.SourceType.TypeRaster\n"
        "e = QgsProcessing.TEMPORARY_OUTPUT\n",
        encoding="utf-8",
    )
    found = list(unscoped_enum_accesses(sample))
    assert [line.split(": ", 1)[1] for line in found] == [
        "Qt.UserRole -> Qt.ItemDataRole.UserRole",
        "QgsProcessing.TypeRaster -> QgsProcessing.SourceType.TypeRaster",
    ]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_enum_access_is_scoped(path):
    found = list(unscoped_enum_accesses(path))
    assert not found, "unscoped enum values (Qt6/QGIS 4 reject them):\n" + "\n".join(found)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_qt_only_through_qgis_pyqt(path):
    """``PyQt5``/``PyQt6`` imported directly pins one Qt; ``exec_`` is gone in PyQt6."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    direct = [
        f"line {node.lineno}"
        for node in ast.walk(tree)
        if (isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in {"PyQt5", "PyQt6", "sip"})
        or (isinstance(node, ast.Import) and any(a.name.split(".")[0] in {"PyQt5", "PyQt6"} for a in node.names))
    ]
    exec_ = [f"line {n.lineno}" for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr == "exec_"]
    assert not direct, f"import Qt through qgis.PyQt: {direct}"
    assert not exec_, f"exec_() is PyQt5-only, call exec(): {exec_}"


def test_metadata_admits_qgis_3_22_to_4():
    meta = configparser.ConfigParser()
    meta.read(ROOT / "metadata.txt", encoding="utf-8")
    general = meta["general"]
    assert general["qgisMinimumVersion"] == "3.22"
    assert general["qgisMaximumVersion"] == "4.99"
    assert "supportsqt6" not in general, "supportsQt6 is deprecated on plugins.qgis.org: qgisMaximumVersion decides"
