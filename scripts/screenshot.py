"""Screenshot of QGIS with the "Landslide detection" dock open and a detection on the map, for the README.

Run under a virtual display (QGIS desktop does not start with QT_QPA_PLATFORM=offscreen):

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/screenshot.py \\
        --s2 S2.tif --dem DEM.tif [--model model.onnx] [--band-map B2=1,...] [--scale x1000] --out docs/screenshot.png

The script starts the real QGIS desktop with a throwaway profile and ``--code`` pointing at this same file.
Inside QGIS it loads the plugin from this checkout, adds the layers, opens the dock, runs the detection
through the dock (its QgsTask), zooms to the result, waits for the map to render, saves the main
window as PNG and quits.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

ARGS_ENV = "LANDSLIDE_SCREENSHOT_ARGS"
# QGIS's --code exec()s the file's text, without __file__; the launcher passes the checkout's root instead
ROOT = (
    Path(__file__).resolve().parents[1] if "__file__" in globals() else Path(json.loads(os.environ[ARGS_ENV])["root"])
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--s2", nargs="+", required=True, help="Sentinel-2 raster(s)")
    parser.add_argument("--dem", required=True, help="DEM raster (metres)")
    parser.add_argument("--model", help="model package; default: the built-in model")
    parser.add_argument("--band-map", default="", help="BAND=SOURCE pairs, as in landslide:detect")
    parser.add_argument("--scale", default="auto", help="reflectance scale (auto, l1c, x1000, 0-1)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshot.png"), help="PNG to write")
    parser.add_argument("--timeout", type=float, default=300, help="seconds before giving up")
    args = parser.parse_args(argv)
    if not os.environ.get("DISPLAY"):
        parser.error("no X display: run under xvfb-run")

    out = Path(args.out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="qgis_screenshot_") as tmp:
        plugins = Path(tmp) / "plugins"
        plugins.mkdir()
        (plugins / "landslide_qgis").symlink_to(ROOT / "landslide_qgis")
        env = dict(os.environ)
        env.pop("QT_QPA_PLATFORM", None)  # the desktop needs the X (Xvfb) platform
        env.update(
            QGIS_PLUGINPATH=str(plugins),
            PYTHONPATH=os.pathsep.join([str(ROOT), sysconfig.get_paths()["purelib"], env.get("PYTHONPATH", "")]),
            HF_HUB_OFFLINE="1",
        )
        env[ARGS_ENV] = json.dumps(
            {
                "s2": [str(Path(p).resolve()) for p in args.s2],
                "dem": str(Path(args.dem).resolve()),
                "model": str(Path(args.model).resolve()) if args.model else None,
                "band_map": args.band_map,
                "scale": args.scale,
                "out": str(out),
                "work": str(Path(tmp) / "results"),
                "root": str(ROOT),
            }
        )
        command = [
            "qgis",
            "--nologo",
            "--noversioncheck",
            "--profiles-path",
            tmp,
            "--code",
            str(Path(__file__).resolve()),
        ]
        try:
            subprocess.run(command, env=env, timeout=args.timeout, check=False)
        except subprocess.TimeoutExpired:
            print(f"QGIS did not finish within {args.timeout:.0f} s", file=sys.stderr)
            return 1
    if not out.exists():
        print("QGIS exited without writing the screenshot; see its output above", file=sys.stderr)
        return 1
    print(out)
    return 0


def _inside_qgis() -> None:
    """Runs in QGIS's Python (``--code``): load the plugin, run the dock, save the window, quit."""
    from qgis.core import QgsProject, QgsRasterLayer
    from qgis.PyQt.QtCore import QTimer
    from qgis.utils import iface, loadPlugin, plugins, startPlugin

    args = json.loads(os.environ[ARGS_ENV])
    loadPlugin("landslide_qgis")
    startPlugin("landslide_qgis")
    dock = plugins["landslide_qgis"].dock

    def show_true_colour(layer) -> None:
        """Draw a multi-band Sentinel-2 layer as B4, B3, B2 with a 2-98 % stretch, as an analyst would."""
        from qgis.core import QgsContrastEnhancement, QgsRasterMinMaxOrigin

        names = [layer.dataProvider().generateBandName(i) for i in range(1, layer.bandCount() + 1)]
        descriptions = [layer.bandName(i) for i in range(1, layer.bandCount() + 1)]
        wanted = []
        for band in ("B4", "B3", "B2"):
            found = [
                i + 1 for i, text in enumerate(descriptions) if text.split(":")[-1].strip().replace("B0", "B") == band
            ]
            wanted.append(found[0] if found else None)
        renderer = layer.renderer()
        if None in wanted or not hasattr(renderer, "setRedBand") or len(names) < 3:
            return
        renderer.setRedBand(wanted[0])
        renderer.setGreenBand(wanted[1])
        renderer.setBlueBand(wanted[2])
        layer.setContrastEnhancement(
            QgsContrastEnhancement.ContrastEnhancementAlgorithm.StretchToMinimumMaximum,
            QgsRasterMinMaxOrigin.Limits.CumulativeCut,
        )
        layer.triggerRepaint()

    def fail(message: str) -> None:
        print(f"screenshot: {message}", file=sys.stderr)
        _quit(1)

    s2_layers = [QgsRasterLayer(path, Path(path).stem) for path in args["s2"]]
    QgsProject.instance().setCrs(s2_layers[0].crs())  # the results are on the Sentinel-2 grid
    for layer in s2_layers:
        QgsProject.instance().addMapLayer(layer)
    dem_layer = QgsRasterLayer(args["dem"], Path(args["dem"]).stem)
    QgsProject.instance().addMapLayer(dem_layer)
    QgsProject.instance().layerTreeRoot().findLayer(dem_layer.id()).setItemVisibilityChecked(False)
    show_true_colour(s2_layers[0])
    iface.mainWindow().resize(1600, 1000)
    iface.mainWindow().showMaximized()
    plugins["landslide_qgis"].action.setChecked(True)
    dock.apply_suggestions()
    if args["model"]:
        dock.add_model_file(args["model"])
    Path(args["work"]).mkdir(parents=True, exist_ok=True)
    dock.output_widget.setFilePath(args["work"])

    def save_when_rendered() -> None:
        canvas = iface.mapCanvas()
        canvas.waitWhileRendering()
        iface.messageBar().clearWidgets()  # QGIS's own "Task complete" notice arrives after the results
        iface.mainWindow().grab().save(args["out"])
        _quit(0)

    def on_results(_results) -> None:
        group = QgsProject.instance().layerTreeRoot().children()[0]
        polygons = group.findLayers()[0].layer()
        iface.setActiveLayer(polygons)
        # the canvas may be in another layer's CRS; changing it could open a datum-transform dialog nobody answers
        canvas = iface.mapCanvas()
        canvas.setExtent(canvas.mapSettings().layerExtentToOutputExtent(s2_layers[0], s2_layers[0].extent()))
        iface.messageBar().clearWidgets()
        iface.mapCanvas().refreshAllLayers()
        QTimer.singleShot(3000, save_when_rendered)

    def run() -> None:
        task = dock.start_run()
        if task is None:
            fail(dock.status_label.text())
            return
        task.succeeded.connect(on_results)
        task.failed.connect(lambda message: fail(message or "cancelled"))

    dock.scale_combo.setCurrentText(args["scale"])
    dock.band_map_edit.setText(args["band_map"])
    QTimer.singleShot(1000, run)


def _quit(code: int) -> None:
    """Leave QGIS at once: a normal exit would ask whether to save the project, and Xvfb has nobody to answer."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _running_inside_qgis() -> bool:
    """QGIS's ``--code`` executes this file in its own Python, where ``qgis.utils.iface`` is the desktop."""
    if not os.environ.get(ARGS_ENV) or "qgis.utils" not in sys.modules:
        return False
    return sys.modules["qgis.utils"].iface is not None


if _running_inside_qgis():
    try:
        _inside_qgis()
    except Exception:  # QGIS would show the traceback in a dialog and wait forever under Xvfb
        import traceback

        traceback.print_exc()
        _quit(1)
elif __name__ == "__main__":
    sys.exit(main())
