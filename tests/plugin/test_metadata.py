"""Repository-ready metadata: one version everywhere, a changelog entry for it, the QGIS range, no stale advice."""

from __future__ import annotations

import configparser
import re

import tomllib

import landslide_engine
from tests.paths import ROOT


def _general() -> configparser.SectionProxy:
    meta = configparser.ConfigParser(interpolation=None)
    meta.read(ROOT / "metadata.txt", encoding="utf-8")
    return meta["general"]


def test_one_version_in_metadata_pyproject_and_engine():
    version = _general()["version"]
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert re.fullmatch(r"\d+\.\d+\.\d+", version)
    assert pyproject["project"]["version"] == version
    assert landslide_engine.__version__ == version


def test_the_version_has_a_changelog_entry_in_both_places():
    version = _general()["version"]
    assert _general()["changelog"].strip().startswith(version)
    assert re.search(rf"^## {re.escape(version)}\b", (ROOT / "CHANGELOG.md").read_text(encoding="utf-8"), re.M)


def test_required_fields_present_and_placeholders_marked():
    general = _general()
    for key in ("name", "description", "about", "version", "author", "email", "repository", "tracker"):
        assert general.get(key, "").strip(), key
    text = (ROOT / "metadata.txt").read_text(encoding="utf-8")
    if "example.org" in general["email"]:
        assert "PLACEHOLDERS" in text, "a placeholder contact must say it is one"
    assert general["experimental"] in ("True", "False")
    assert "# Experimental on purpose" in text or general["experimental"] == "False"


def test_no_advice_that_fails_on_current_systems():
    """``pip install --user`` ends in externally-managed-environment (PEP 668); numpy<2 is no longer a limit."""
    for path in (ROOT / "metadata.txt", ROOT / "README.md", ROOT / "landslide_qgis" / "dependencies.py"):
        text = path.read_text(encoding="utf-8")
        assert "pip install --user" not in text, path
    assert "numpy (<2)" not in _general()["about"]
