"""QGIS entry point of the Landslide Mapper plugin.

The plugin zip ships ``landslide_engine`` inside the plugin folder; in a source
checkout it sits next to the plugin instead. Either way it must be importable as
a top-level package, so the plugin folder is put on ``sys.path`` when the
engine is bundled there. It is appended, not prepended, so that nothing in the
plugin folder can ever shadow a package of QGIS's own (the Toolbox subpackage is
called ``toolbox``, not ``processing``, for the same reason: a ``processing`` at
the front of ``sys.path`` would hide QGIS's ``processing`` plugin and break every provider).

The packages folder that ``install_dependencies.py`` fills (onnxruntime, optionally torch) is appended too, at
import, so qgis_process and the Toolbox find them as well as the dock.
"""

from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if os.path.isdir(os.path.join(_HERE, "landslide_engine")) and _HERE not in sys.path:
    sys.path.append(_HERE)

# packages installed by install_dependencies.py (or its dialog) into the plugin's own folder, after QGIS's own
from landslide_qgis.install_dependencies import add_to_sys_path  # noqa: E402

add_to_sys_path()


def classFactory(iface):
    """Called by QGIS to create the plugin instance."""
    from landslide_qgis.plugin import LandslidePlugin

    return LandslidePlugin(iface)
