"""Where the project and the real data in ../shared lie, for every test module and helper."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
L4S = SHARED / "landslide4sense"
GEO = SHARED / "geo"
