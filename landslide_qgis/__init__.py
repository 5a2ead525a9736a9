"""QGIS entry point of the Landslide Mapper plugin.

The plugin zip ships ``landslide_engine`` inside the plugin folder; in a source
checkout it sits next to the plugin instead. Either way it must be importable as
a top-level package, so the plugin folder is put on ``sys.path`` when the
engine is bundled there.
"""

from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if os.path.isdir(os.path.join(_HERE, "landslide_engine")) and _HERE not in sys.path:
    sys.path.insert(0, _HERE)


def classFactory(iface):
    """Called by QGIS to create the plugin instance."""
    from landslide_qgis.plugin import LandslidePlugin

    return LandslidePlugin(iface)
