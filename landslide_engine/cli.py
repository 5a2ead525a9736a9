"""``python -m landslide_engine``: the engine from the shell.

Subcommands: ``predict`` (scene -> probability, mask, polygons, report), ``batch`` (many scenes ->
the same per scene, regional mosaics and polygons; exit 2 when any scene failed, after all ran),
``predict-h5`` (Landslide4Sense .h5 patches), ``stack`` (the 14-band model
input), ``slope``, ``models``, ``demo`` (the synthetic demo scene) and ``quantize`` (an int8 copy of a
model for the CPU). Each subcommand is one entry of
:data:`COMMANDS` (a parser builder and a runner), so new ones plug in there.

Exit codes: 0 on success, 2 on bad input with one line on stderr and no
traceback, 130 when interrupted, 143/129 on SIGTERM/SIGHUP (see :mod:`landslide_engine.command_line`).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from landslide_engine.command_line import EXIT_BAD_INPUT, EXIT_OK, quiet_gdal, run_command
from landslide_engine.errors import InputError, one_line
from landslide_engine.memory import configure_for_scenes
from landslide_engine.notices import delivered
from landslide_engine.options import (
    BACKENDS,
    BASELINE_OFFSET_HELP,
    BASELINE_OFFSETS,
    DEFAULT_MASK_CLASSES,
    DEFAULT_MIN_AREA_M2,
    DEFAULT_PRECISION,
    DEVICES,
    PRECISION_HELP,
    PRECISIONS,
    REFLECTANCE_SCALE_ALIASES,
    REFLECTANCE_SCALE_HELP,
    REFLECTANCE_SCALES,
    SCL_CLASSES,
)

QUANTIZE_DESCRIPTION = (
    "Writes an int8 static (QDQ) copy of a model for fast CPU inference, calibrated on Landslide4Sense .h5 "
    "patches; it runs like any .onnx model (predict --model OUT.onnx). Named NAME.int8.onnx beside NAME.onnx, it "
    "is that model's int8 version, which --precision auto (the default) runs on the CPU. Measured on the built-in "
    "model (MODEL_CARD.md, bench/PRECISION_BUILTIN.md): cross-validated pooled F1 0.7072 in fp32 and in int8; "
    "mask F1 0.993 against the fp32 mask on patches it was not calibrated on; 1.8-2.1x the fp32 speed on a 2-core "
    "CPU with VNNI/AMX."
)


@dataclass(frozen=True)
class Command:
    """One subcommand: how to declare its arguments and how to run it (returns the exit code)."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


class _Terminal:
    """What the analyst sees on stderr: a self-overwriting progress line (only when stderr is a terminal) and
    one ``warning: ...`` line per engine warning, each starting on a line of its own."""

    def __init__(self) -> None:
        self.shown = False

    def progress(self, percent: float, message: str) -> None:
        if sys.stderr.isatty():
            print(f"\r{percent:5.1f}% {message:<60}", end="", file=sys.stderr, flush=True)
            self.shown = True

    def end(self) -> None:
        """Finish the progress line so the next message starts on its own line."""
        if self.shown:
            print(file=sys.stderr, flush=True)
            self.shown = False

    def info(self, message: str) -> None:
        """What the engine found about the inputs (the ``info`` callback), e.g. the reflectance scale."""
        self.end()
        print(f"note: {message}", flush=True)  # stdout: a finding, not a warning or an error

    def warn(self, message: str) -> None:
        """One engine warning (the ``warn`` callback of the engine's entry points)."""
        self.end()
        print(f"warning: {one_line(message)}", file=sys.stderr, flush=True)


_terminal = _Terminal()


class _LogToTerminal(logging.Handler):
    """Log warnings that did not come through ``warn`` (e.g. a model file skipped), printed like the others.
    The root logger's level (WARNING) keeps the engine's INFO records out."""

    def emit(self, record: logging.LogRecord) -> None:
        if not delivered(record):
            _terminal.warn(record.getMessage())


def _band_map(pairs: Sequence[str] | None) -> dict[str, str] | None:
    if not pairs:
        return None
    result: dict[str, str] = {}
    for pair in pairs:
        band, sep, source = pair.partition("=")
        if not sep or not band or not source:
            raise InputError(f"--band-map {pair!r} is not BAND=SOURCE (e.g. B4=scene.tif:3)")
        if band.strip() in result:
            raise InputError(f"--band-map names band {band.strip()} twice")
        result[band.strip()] = source.strip()
    return result


def _fill_values(pairs: Sequence[str] | None) -> dict[str, float]:
    result: dict[str, float] = {}
    for pair in pairs or ():
        band, _, value = pair.partition("=")
        if band.strip() in result:
            raise InputError(f"--fill names band {band.strip()} twice")
        try:
            result[band.strip()] = float(value)
        except ValueError:
            raise InputError(f"--fill {pair!r} is not BAND=NUMBER (e.g. B10=1.0)") from None
    return result


def _add_scene_inputs(p: argparse.ArgumentParser) -> None:
    """The files of one scene: ``predict`` and ``stack``."""
    p.add_argument(
        "--s2", nargs="+", required=True, metavar="FILE", help="Sentinel-2 raster(s): one stack or band files"
    )
    p.add_argument(
        "--dem", nargs="+", required=True, metavar="FILE", help="DEM in metres, any CRS; several tiles are mosaicked"
    )
    p.add_argument("--slope", metavar="FILE", help="slope in degrees (computed from the DEM when absent)")
    p.add_argument("--scl", metavar="FILE", help="an L2A scene classification raster (for inputs that are not SAFE)")


def _add_reading_arguments(p: argparse.ArgumentParser) -> None:
    """How the Sentinel-2 values and the grid are read: shared by every command that reads a scene."""
    p.add_argument(
        "--band-map",
        nargs="+",
        metavar="BAND=SOURCE",
        help="name ambiguous bands: B4=3 (band 3 of the only S2 file), B4=file.tif or B4=file.tif:3",
    )
    p.add_argument(
        "--reflectance-scale",
        default=REFLECTANCE_SCALES[0],
        choices=[*REFLECTANCE_SCALES, *REFLECTANCE_SCALE_ALIASES],
        help=REFLECTANCE_SCALE_HELP,
    )
    p.add_argument(
        "--baseline-offset",
        default=BASELINE_OFFSETS[0],
        metavar="{" + ",".join(BASELINE_OFFSETS) + "}",
        help=BASELINE_OFFSET_HELP + "; any other number of DN is taken as well",
    )
    p.add_argument("--extent", nargs=4, type=float, metavar=("XMIN", "YMIN", "XMAX", "YMAX"))
    p.add_argument("--extent-crs", help="CRS of --extent (default: the CRS of the Sentinel-2 bands)")
    p.add_argument("--resolution", type=float, help="grid pixel size in S2 CRS units (default 10 m)")
    p.add_argument(
        "--mask-classes",
        nargs="+",
        metavar="CODE",
        help=(
            "scene classification (SCL) codes made no data, or 'none' (default "
            f"{' '.join(map(str, DEFAULT_MASK_CLASSES))}: "
            f"{', '.join(SCL_CLASSES[c] for c in DEFAULT_MASK_CLASSES)}); "
            "L1C masks: 8/9 select opaque clouds, 10 cirrus, 11 snow"
        ),
    )
    p.add_argument(
        "--s2cloudless",
        action="store_true",
        help="find clouds with s2cloudless (L1C input without a cloud mask of its own; needs B01 B02 B04 B05 "
        "B08 B8A B09 B10 B11 B12 and `pip install --no-deps s2cloudless lightgbm`)",
    )


def _add_mapping_arguments(p: argparse.ArgumentParser) -> None:
    """The model and how it maps a scene: shared by ``predict`` and ``batch``."""
    _add_reading_arguments(p)
    p.add_argument("--model", help="model name from `models` or a package path (default: the built-in model)")
    p.add_argument("--device", default="auto", choices=DEVICES)
    p.add_argument("--backend", default="auto", choices=BACKENDS)
    p.add_argument("--precision", default=DEFAULT_PRECISION, choices=PRECISIONS, help=PRECISION_HELP)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--overlap", type=int, default=32, metavar="PX", help="overlap between 128 px patches")
    p.add_argument("--threshold", type=float, help="landslide probability threshold (default: the model's)")
    p.add_argument("--tta", action="store_true", help="average over flips and 90-degree rotations (8x slower)")
    p.add_argument(
        "--min-area",
        type=float,
        default=DEFAULT_MIN_AREA_M2,
        metavar="M2",
        help=f"drop polygons smaller than this, in m2 (default {DEFAULT_MIN_AREA_M2:g}: single 10 m pixels go; "
        "the mask keeps them); 0 keeps every polygon",
    )


def _mapping_options(args: argparse.Namespace) -> dict:
    """The :class:`~landslide_engine.pipeline.PredictRequest` fields that :func:`_add_mapping_arguments` declares."""
    return {
        "model": args.model,
        "device": args.device,
        "backend": args.backend,
        "precision": args.precision,
        "batch_size": args.batch_size,
        "overlap": args.overlap,
        "threshold": args.threshold,
        "tta": args.tta,
        "extent": tuple(args.extent) if args.extent else None,
        "extent_crs": args.extent_crs,
        "band_map": _band_map(args.band_map),
        "reflectance_scale": args.reflectance_scale,
        "baseline_offset": args.baseline_offset,
        "resolution": args.resolution,
        "min_area_m2": args.min_area,
        "mask_classes": args.mask_classes,
        "s2cloudless": args.s2cloudless,
    }


def _add_predict(p: argparse.ArgumentParser) -> None:
    _add_scene_inputs(p)
    _add_mapping_arguments(p)
    p.add_argument("--out", required=True, metavar="DIR")


def _run_predict(args: argparse.Namespace) -> int:
    from landslide_engine.pipeline import PredictRequest, predict_scene

    request = PredictRequest(
        s2=list(args.s2), dem=args.dem, out_dir=args.out, slope=args.slope, scl=args.scl, **_mapping_options(args)
    )
    result = predict_scene(request, progress=_terminal.progress, warn=_terminal.warn, info=_terminal.info)
    _terminal.end()
    skipped = result.n_patches_without_data
    patches = f"{result.n_patches} patches" + (f" ({skipped} without data, not run)" if skipped else "")
    print(
        f"{result.n_landslides} landslide(s), {result.landslide_area_m2:.0f} m2, {patches} "
        f"on {result.device} ({result.backend}); outputs in {Path(args.out)}"
    )
    return EXIT_OK


def _add_batch(p: argparse.ArgumentParser) -> None:
    p.add_argument("scenes", nargs="+", metavar="SCENE", help="Sentinel-2 scenes, each one file as --s2 of predict")
    p.add_argument(
        "--dem",
        nargs="+",
        required=True,
        metavar="DEM",
        help="the region's DEM: one file or its tiles",
    )
    p.add_argument("--slope", metavar="FILE", help="slope in degrees over the region (computed per scene when absent)")
    _add_mapping_arguments(p)
    p.add_argument(
        "--out", required=True, metavar="DIR", help="DIR/<scene id>/ per scene, mosaics, landslides.gpkg, batch.json"
    )
    from landslide_engine.batch.executors import EXECUTORS

    p.add_argument(
        "--executor",
        default="local",
        choices=EXECUTORS,
        help="local: scenes one after another here (default); ray: on a Ray cluster (needs ray: make setup-ray)",
    )
    p.add_argument("--ray-address", metavar="ADDR", help="the Ray cluster to use (default: start a local one)")
    p.add_argument(
        "--ray-gpus-per-actor",
        type=float,
        metavar="SHARE",
        help="share of a GPU each Ray actor (one scene at a time, one model copy) asks for, 0 to 1: 0.5 puts two "
        "actors on each GPU, 0 maps on CPU slots only (default: 1 with --device cuda, else 0)",
    )


def _run_batch(args: argparse.Namespace) -> int:
    from landslide_engine.batch import BatchRequest, run_batch

    request = BatchRequest(
        scenes=list(args.scenes),
        dems=list(args.dem),
        slope=args.slope,
        out_dir=args.out,
        options=_mapping_options(args),
        executor=args.executor,
        ray_address=args.ray_address,
        ray_gpus_per_actor=args.ray_gpus_per_actor,
    )
    result = run_batch(request, progress=_terminal.progress, warn=_terminal.warn, info=_terminal.info)
    _terminal.end()
    for outcome in result.outcomes:
        if outcome.status == "failed":
            print(f"{outcome.scene_id}: failed: {outcome.reason}", file=sys.stderr)
        else:
            print(f"{outcome.scene_id}: {outcome.status}, {outcome.landslides} landslide(s) ({outcome.seconds:.1f} s)")
    counts = {s: sum(1 for o in result.outcomes if o.status == s) for s in ("done", "skipped", "failed")}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items())
    if result.regional is not None:
        summary += f"; {result.regional.landslides} landslide(s) in {result.regional.polygons}"
    print(f"{len(result.outcomes)} scene(s): {summary}; report {result.report}")
    return EXIT_BAD_INPUT if result.failed else EXIT_OK


def _add_predict_h5(p: argparse.ArgumentParser) -> None:
    which = p.add_mutually_exclusive_group()
    which.add_argument("--model", help="model name or package path (default: the built-in model)")
    which.add_argument("--all-models", action="store_true", help="run every model that `models` lists")
    p.add_argument("files", nargs="+", metavar="FILE.h5")
    p.add_argument("--device", default="auto", choices=DEVICES)
    p.add_argument("--backend", default="auto", choices=BACKENDS)
    p.add_argument("--precision", default=DEFAULT_PRECISION, choices=PRECISIONS, help=PRECISION_HELP)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--out", required=True, metavar="DIR")


def _run_predict_h5(args: argparse.Namespace) -> int:
    from landslide_engine.h5predict import predict_h5
    from landslide_engine.models.catalog import list_models, resolve_model

    models = [str(m.path) for m in list_models()] if args.all_models else [str(resolve_model(args.model))]
    written = predict_h5(
        [Path(f) for f in args.files],
        models,
        Path(args.out),
        backend=args.backend,
        device=args.device,
        batch_size=args.batch_size,
        progress=_terminal.progress,
        precision=args.precision,
        skip_unusable_models=args.all_models,
        warn=_terminal.warn,
    )
    _terminal.end()
    print(f"{len(written)} file(s) written to {args.out}")
    return EXIT_OK


def _add_stack(p: argparse.ArgumentParser) -> None:
    _add_scene_inputs(p)
    _add_reading_arguments(p)
    p.add_argument(
        "--fill", nargs="+", metavar="BAND=VALUE", help="constant (l4s units) for a band the input lacks, e.g. B10=1.0"
    )
    p.add_argument("--out", required=True, metavar="FILE")


def _run_stack(args: argparse.Namespace) -> int:
    from landslide_engine.pipeline import stack_to_file

    out = stack_to_file(
        list(args.s2),
        args.dem,
        args.out,
        slope=args.slope,
        fill_values=_fill_values(args.fill),
        band_map=_band_map(args.band_map),
        reflectance_scale=args.reflectance_scale,
        baseline_offset=args.baseline_offset,
        extent=tuple(args.extent) if args.extent else None,
        extent_crs=args.extent_crs,
        resolution=args.resolution,
        mask_classes=args.mask_classes,
        scl=args.scl,
        s2cloudless=args.s2cloudless,
        progress=_terminal.progress,
        warn=_terminal.warn,
        info=_terminal.info,
    )
    _terminal.end()
    print(out)
    return EXIT_OK


def _add_slope(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dem", nargs="+", required=True, metavar="FILE", help="DEM, or several tiles to mosaic")
    p.add_argument("--out", required=True, metavar="FILE")


def _run_slope(args: argparse.Namespace) -> int:
    from landslide_engine.slope import write_slope

    out = write_slope(
        args.dem, args.out, progress=lambda percent: _terminal.progress(percent, "slope"), warn=_terminal.warn
    )
    _terminal.end()
    print(out)
    return EXIT_OK


def _add_models(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print a JSON list of objects")


def _run_models(args: argparse.Namespace) -> int:
    from landslide_engine.models.catalog import list_models

    models = list_models()
    if args.json:
        print(json.dumps([m.to_dict() for m in models], indent=2))
        return EXIT_OK
    for m in models:
        f1 = m.metrics.get("f1")
        score = f"F1 {f1:.3f}" if isinstance(f1, (int, float)) else "F1 -"
        arch = m.architecture + (f"/{m.encoder}" if m.encoder else "")
        line = f"{m.name:<28} {arch:<32} {m.size_bytes / 1e6:7.1f} MB  {score:<9} {m.origin:<8} {m.path}"
        print(one_line(line))  # names come from downloaded files: never raw control characters on a terminal
    return EXIT_OK


def _add_demo(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--model", help="model name or package path (default: the built-in model)")
    p.add_argument("--device", default="auto", choices=DEVICES)


def _run_demo(args: argparse.Namespace) -> int:
    from landslide_engine.demo import run_demo

    summary = run_demo(
        args.out,
        model=args.model,
        device=args.device,
        progress=_terminal.progress,
        warn=_terminal.warn,
        info=_terminal.info,
    )
    _terminal.end()
    scores = summary["scores_vs_truth"]
    print("SYNTHETIC demo scene (generated in code; not a real observation)")
    print(f"  scene:       {Path(summary['scene']['s2']).parent}")
    for name, path in summary["outputs"].items():
        print(f"  {name + ':':<12} {path}")
    print(
        f"{summary['n_landslides']} landslide(s), {summary['landslide_area_m2'] / 1e6:.3f} km2 on "
        f"{summary['device']} ({summary['backend']}); pixel F1 {scores['f1']:.3f} against the painted scars"
    )
    return EXIT_OK


def _add_quantize(p: argparse.ArgumentParser) -> None:
    from landslide_engine.models.quantize import CALIBRATION_PATCHES

    p.description = QUANTIZE_DESCRIPTION
    p.add_argument("--model", required=True, help="model name from `models`, builtin, or a package path")
    p.add_argument(
        "--calibration",
        required=True,
        metavar="FOLDER",
        help="Landslide4Sense root (patches in TrainData/img) or a folder of .h5 patches like the scenes to map",
    )
    p.add_argument("--out", required=True, metavar="OUT.onnx", help="the int8 model package to write")
    p.add_argument(
        "--patches",
        type=int,
        default=CALIBRATION_PATCHES,
        metavar="N",
        help=f"calibration patches to use, spread over the folder (default {CALIBRATION_PATCHES})",
    )


def _run_quantize(args: argparse.Namespace) -> int:
    from landslide_engine.models.catalog import resolve_model
    from landslide_engine.models.package import load_package
    from landslide_engine.models.quantize import quantize_static, read_calibration_patches

    package = load_package(resolve_model(args.model))
    patches, source = read_calibration_patches(args.calibration, package.metadata, args.patches)
    out = quantize_static(package, patches, args.out)
    print(f"int8 model written to {out}, calibrated on {len(patches)} patch(es) from {source}")
    return EXIT_OK


COMMANDS: list[Command] = [
    Command("predict", "map landslides in a Sentinel-2 scene", _add_predict, _run_predict),
    Command("batch", "map many scenes into per-scene outputs and regional mosaics", _add_batch, _run_batch),
    Command("predict-h5", "predict Landslide4Sense .h5 patches", _add_predict_h5, _run_predict_h5),
    Command("stack", "write the 14-band model input as a GeoTIFF", _add_stack, _run_stack),
    Command("slope", "slope in degrees from a DEM", _add_slope, _run_slope),
    Command("models", "list the available models", _add_models, _run_models),
    Command("demo", "run the built-in model on a synthetic demo scene", _add_demo, _run_demo),
    Command("quantize", "write an int8 copy of a model for fast CPU inference", _add_quantize, _run_quantize),
]


def build_parser(commands: Sequence[Command] = COMMANDS) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m landslide_engine", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in commands:
        sub = subparsers.add_parser(command.name, help=command.help, description=command.help)
        command.add_arguments(sub)
        sub.set_defaults(run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the subcommand; returns the exit code."""
    configure_for_scenes()  # GDAL's block cache capped: see memory.py
    quiet_gdal()
    logging.basicConfig(level=logging.WARNING, handlers=[_LogToTerminal()])
    args = build_parser().parse_args(argv)
    return run_command(lambda: args.run(args), before_message=_terminal.end)
