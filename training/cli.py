"""``python -m training``: train, evaluate, export, zoo, import-deepslide, crossval, builtin.

Bad input ends with exit code 2 and one line on stderr naming the file or option; Ctrl-C, SIGTERM or SIGHUP
during training saves a checkpoint and ends with exit code 130 and the ``--resume`` to continue
(:mod:`landslide_engine.command_line`).
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from landslide_engine.command_line import EXIT_OK, quiet_gdal, run_command
from landslide_engine.errors import InputError, ParameterError
from landslide_engine.parameters import finite
from landslide_engine.targets import probe_output_folder
from training.data.splits import DEFAULT_GROUP_WIDTH, DEFAULT_VAL_FRACTION
from training.fitting.recipes import RECIPES, get_recipe
from training.fitting.trainer import TrainConfig, train
from training.studies.crossval import VARIANTS


def _add_training_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True, help="Landslide4Sense root (TrainData/, ValidData/, ...)")
    parser.add_argument("--recipe", choices=sorted(RECIPES), default=None, help="seed: the paper's; default: ours")
    parser.add_argument("--epochs", type=int, help="override the recipe's number of epochs")
    parser.add_argument("--batch-size", type=int, help="override the recipe's (global) batch size")
    parser.add_argument("--lr", type=float, help="override the recipe's learning rate")
    parser.add_argument("--loss", choices=["bce-dice", "focal-dice"], help="override the recipe's loss")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split, initialisation and data order")
    parser.add_argument("--val-fraction", type=float, default=DEFAULT_VAL_FRACTION, help="hold-out share w/o ValidData")
    parser.add_argument("--group-width", type=int, default=DEFAULT_GROUP_WIDTH, help="IDs per neighbourhood group")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    parser.add_argument("--max-steps-per-epoch", type=int, help="cap the batches per epoch (smoke runs)")
    parser.add_argument("--no-onnx", action="store_true", help="write only the .pt package")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training", description="Train, evaluate and export landslide models on Landslide4Sense patches."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    train_parser = commands.add_parser("train", help="train one model; writes checkpoint, packages, metrics, plots")
    train_parser.add_argument("--model", required=True, help="registry name, e.g. unet_resnet34")
    _add_training_options(train_parser)
    train_parser.add_argument("--folds", type=int, help="grouped k-fold over TrainData (all folds unless --fold)")
    train_parser.add_argument("--fold", type=int, help="train only this fold (0-based)")
    train_parser.add_argument("--resume", type=Path, help="checkpoint.pt of an interrupted run with the same options")

    evaluate_parser = commands.add_parser("evaluate", help="score a model package on a labelled split")
    evaluate_parser.add_argument("--model", required=True, help="model name from the catalog, or a package path")
    evaluate_parser.add_argument("--data", type=Path, required=True, help="Landslide4Sense root")
    evaluate_parser.add_argument("--split", help="train, val or test (default: test if labelled, else val)")
    evaluate_parser.add_argument("--threshold", type=float, help="override the package's threshold")
    evaluate_parser.add_argument("--backend", default="auto", choices=["auto", "onnx", "torch"])
    evaluate_parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    evaluate_parser.add_argument("--seed", type=int, default=0, help="seed of the hold-out when there is no ValidData")
    evaluate_parser.add_argument("--group-width", type=int, default=DEFAULT_GROUP_WIDTH)
    evaluate_parser.add_argument("--json", action="store_true", help="print one JSON object")

    export_parser = commands.add_parser("export", help="write a checkpoint's model as .onnx (or .pt) package")
    export_parser.add_argument("--checkpoint", type=Path, required=True)
    export_parser.add_argument("--out", type=Path, required=True, help="FILE.onnx or FILE.pt")
    export_parser.add_argument("--opset", type=int, default=17)

    zoo_parser = commands.add_parser("zoo", help="train and evaluate the paper's model table")
    zoo_parser.add_argument("--models", default="all", help="all, or comma-separated registry names")
    _add_training_options(zoo_parser)

    crossval_parser = commands.add_parser(
        "crossval", help="grouped k-fold comparison of recipes and baselines on a small labelled set"
    )
    crossval_parser.add_argument("--data", type=Path, required=True, help="Landslide4Sense root")
    crossval_parser.add_argument("--variants", default="all", help="all, or comma-separated: " + ", ".join(VARIANTS))
    crossval_parser.add_argument("--folds", type=int, default=5)
    crossval_parser.add_argument("--group-width", type=int, default=16, help="IDs per neighbourhood group")
    crossval_parser.add_argument("--seed", type=int, default=0)
    crossval_parser.add_argument(
        "--fill-bands", default="", help="also score with these bands set to the training mean, e.g. B1,B9,B10"
    )
    crossval_parser.add_argument(
        "--int8",
        action="store_true",
        help="also run each fold's network as the engine runs an fp32 and an int8 package (quantized as "
        "`python -m landslide_engine quantize` does, calibrated on the fold's training patches) and compare F1",
    )
    crossval_parser.add_argument("--out", type=Path, required=True, help="folder for crossval.json and .md")

    builtin_parser = commands.add_parser("builtin", help="train the built-in model from a crossval result")
    builtin_parser.add_argument("--data", type=Path, required=True, help="Landslide4Sense root")
    builtin_parser.add_argument("--crossval", type=Path, required=True, help="crossval.json of `crossval`")
    builtin_parser.add_argument("--variant", required=True, help="the CNN variant to ship")
    builtin_parser.add_argument("--name", default="builtin", help="model name in the package metadata")
    builtin_parser.add_argument("--seed", type=int, default=0)
    builtin_parser.add_argument(
        "--min-slope", type=int, default=0, metavar="DEG", help="no landslide on slopes under DEG degrees (0: off)"
    )
    builtin_parser.add_argument("--out", type=Path, required=True, help="FILE.onnx")

    import_parser = commands.add_parser("import-deepslide", help="convert the Seed paper's released weights")
    import_parser.add_argument("checkpoint", type=Path, help="the released .pth/.ckpt file")
    import_parser.add_argument("--model", required=True, help="registry name the weights belong to")
    import_parser.add_argument("--out", type=Path, required=True, help="PKG.onnx or PKG.pt")
    return parser


def _train_config(args: argparse.Namespace, model: str, default_recipe: str) -> TrainConfig:
    recipe = get_recipe(args.recipe or default_recipe).with_overrides(
        epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr, loss=args.loss
    )
    for name, value in (("--epochs", recipe.epochs), ("--batch-size", recipe.batch_size)):
        if value < 1:
            raise InputError(f"{name} {value}: must be at least 1")
    if not finite(recipe.learning_rate, "--lr") > 0:
        raise ParameterError(f"--lr {recipe.learning_rate}: must be positive")
    if not 0 < finite(args.val_fraction, "--val-fraction") < 1:
        raise ParameterError(f"--val-fraction {args.val_fraction}: must be between 0 and 1")
    probe_output_folder(args.out, "--out")  # before training, not after it
    return TrainConfig(
        data=args.data,
        model=model,
        out=args.out,
        recipe=recipe,
        seed=args.seed,
        val_fraction=args.val_fraction,
        group_width=args.group_width,
        device=args.device,
        workers=args.workers,
        max_steps_per_epoch=args.max_steps_per_epoch,
        export_onnx=not args.no_onnx,
        progress=not args.quiet,
    )


def _print_scores(title: str, scores: dict) -> None:
    print(
        f"{title}: F1 {scores['f1']:.4f}  precision {scores['precision']:.4f}  recall {scores['recall']:.4f}  "
        f"IoU {scores['iou']:.4f}  (per-batch mean F1 {scores['batch_mean_f1']:.4f}, "
        f"threshold {scores['threshold']:.3f})"
    )


def _command_train(args: argparse.Namespace) -> None:
    config = _train_config(args, args.model, "default")
    if args.folds is not None and args.fold is None:
        _train_all_folds(config, args.folds, args.resume)
        return
    result = train(replace(config, folds=args.folds, fold=args.fold, resume=args.resume))
    if result.metrics:
        for split in ("val", "test"):
            if split in result.metrics:
                _print_scores(split, result.metrics[split])
        print("wrote", ", ".join(str(path) for path in result.packages))


def _train_all_folds(config: TrainConfig, folds: int, resume: Path | None) -> None:
    if resume is not None:
        raise InputError("--resume needs --fold: resume one fold's checkpoint at a time")
    f1_scores = []
    for fold in range(folds):
        result = train(replace(config, folds=folds, fold=fold, out=Path(config.out) / f"fold_{fold}"))
        if result.metrics:
            _print_scores(f"fold {fold} val", result.metrics["val"])
            f1_scores.append(result.metrics["val"]["f1"])
    if f1_scores:
        spread = statistics.stdev(f1_scores) if len(f1_scores) > 1 else 0.0
        summary = {"folds": folds, "val_f1": f1_scores, "mean_f1": statistics.mean(f1_scores), "std_f1": spread}
        (Path(config.out) / "cross_validation.json").write_text(json.dumps(summary, indent=2) + "\n")
        print(f"{folds}-fold validation F1 {summary['mean_f1']:.4f} ± {spread:.4f}")


def _command_evaluate(args: argparse.Namespace) -> None:
    from training.scores.evaluate_package import evaluate_model

    scores = evaluate_model(
        args.model,
        args.data,
        split=args.split,
        threshold=args.threshold,
        backend=args.backend,
        device=args.device,
        seed=args.seed,
        group_width=args.group_width,
    )
    if args.json:
        print(json.dumps(scores))
    else:
        _print_scores(f"{scores['model']} on {scores['split']} ({scores['patches']} patches)", scores)
        print(f"ran on {scores['backend']} / {scores['device']}")


def _command_export(args: argparse.Namespace) -> None:
    from training.packaging.export import export_checkpoint

    print("wrote", export_checkpoint(args.checkpoint, args.out, opset=args.opset))


def _command_zoo(args: argparse.Namespace) -> None:
    from training.studies.zoo import parse_model_list, run_zoo

    models = parse_model_list(args.models)
    result = run_zoo(models, _train_config(args, models[0], "seed"))
    print(result.markdown.read_text(), end="")
    print("wrote", result.markdown, result.csv)


def _command_import_deepslide(args: argparse.Namespace) -> None:
    from training.packaging.deepslide import import_deepslide

    print("wrote", import_deepslide(args.checkpoint, args.model, args.out))


def _command_crossval(args: argparse.Namespace) -> None:
    from training.data.smalldata import load_labelled, load_unlabelled
    from training.studies.crossval import cross_validate, write_crossval_table

    names = list(VARIANTS) if args.variants == "all" else [n.strip() for n in args.variants.split(",") if n.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise InputError(f"--variants: unknown {', '.join(unknown)}; known: {', '.join(VARIANTS)}")
    data = load_labelled(args.data)
    rows = cross_validate(
        data,
        [VARIANTS[n] for n in names],
        args.folds,
        args.group_width,
        args.seed,
        load_unlabelled(args.data),
        fill_bands=tuple(b.strip() for b in args.fill_bands.split(",") if b.strip()),
        int8=args.int8,
    )
    header = (
        f"Grouped {args.folds}-fold cross-validation on {len(data.ids)} labelled patches of {args.data} "
        f"(group width {args.group_width}, seed {args.seed}); scores pooled over folds"
    )
    json_path, md_path = write_crossval_table(rows, args.out, header)
    print(md_path.read_text(), end="")
    print("wrote", json_path, md_path)


def _command_builtin(args: argparse.Namespace) -> None:
    from training.packaging.builtin import train_builtin

    print(
        "wrote",
        train_builtin(args.data, args.crossval, args.variant, args.out, args.name, args.seed, args.min_slope),
    )


COMMANDS = {
    "train": _command_train,
    "evaluate": _command_evaluate,
    "export": _command_export,
    "zoo": _command_zoo,
    "import-deepslide": _command_import_deepslide,
    "crossval": _command_crossval,
    "builtin": _command_builtin,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; returns the process exit code."""
    args = build_parser().parse_args(argv)
    quiet_gdal()

    def run() -> int:
        COMMANDS[args.command](args)
        return EXIT_OK

    return run_command(run)
