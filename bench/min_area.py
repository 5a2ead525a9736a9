"""What a minimum mapping unit removes and what it costs: the measurement behind ``min_area_m2``'s default.

Two sources, each printed as a Markdown table (the ones in the README and the model card):

* ``folds``: the built-in model's recipe (``default-all-patches``, with the 8-degree slope prior the built-in
  network carries) trained in the grouped 5-fold cross-validation of ``training/studies/crossval.py``; each
  patch is predicted by the fold model that never saw it (10 m pixels). For each minimum area: predicted
  objects kept (4-connected, as the engine's polygons), objects that touch a labelled landslide and those that
  do not, labelled landslides found, and the pooled pixel F1. Each fold trains for minutes on a CPU (300 steps
  of batch 8); each fold's out-of-fold probabilities are cached in ``--cache`` as it finishes.
* ``scene``: the polygons of a ``predict`` run with no minimum area (``run.json``'s folder), here the whole
  Aberystwyth product, which has no landslides: every polygon is a false alarm.

    .venv/bin/python bench/min_area.py folds [L4S_ROOT] [--cache runs/min_area]
    .venv/bin/python bench/min_area.py builtin [L4S_ROOT]   # the shipped model on its own training patches
    .venv/bin/python bench/min_area.py scene RESULT_FOLDER
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from landslide_engine.bands import L4S_BANDS, divisor  # noqa: E402

AREAS_M2 = (0, 200, 300, 500, 1000)  # none, then at least 2 to 10 pixels of 10 m (one pixel is 100 m²)
L4S_PIXEL_M2 = 100.0  # Landslide4Sense patches are Sentinel-2 10 m pixels
MIN_SLOPE_DEG = 8.0  # the built-in model's slope prior (MODEL_CARD.md)


def out_of_fold(
    l4s_root: Path, cache: Path, seed: int = 0, folds: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(probabilities, labels, slope degrees) of the labelled patches of the first ``folds`` folds (all five by
    default), each from the fold model that never saw it. Each fold's probabilities are cached as it finishes."""
    from training.data.smalldata import load_labelled
    from training.studies.crossval import VARIANTS, fit_variant, fold_indices

    data = load_labelled(l4s_root)
    variant = VARIANTS["default-all-patches"]
    cache.mkdir(parents=True, exist_ok=True)
    tested: list[int] = []
    probabilities = np.zeros(data.masks.shape, np.float32)
    splits = fold_indices(data.ids, 5, seed, 16)[:folds]
    for k, (train_index, test_index) in enumerate(splits):
        file = cache / f"fold{k}_seed{seed}.npy"
        if not file.exists():
            train, test = data.subset(train_index), data.subset(test_index)
            unlabelled = np.zeros((0, *data.images.shape[1:]), np.float32)
            predict, _, _ = fit_variant(variant, train, seed + k, 16, unlabelled)
            np.save(file, predict(test.images))
        probabilities[test_index] = np.load(file)
        tested += list(test_index)
        print(f"fold {k}: patches {[data.ids[i] for i in test_index]}", file=sys.stderr)
    slope = data.images[:, L4S_BANDS.index("B13")] * divisor("B13")
    return probabilities[tested], data.masks[tested], slope[tested]


def shipped_model_on_labelled(l4s_root: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(probabilities, labels, slope) of the labelled patches from the shipped built-in model, which was trained
    on them: in-sample, so it shows what a minimum area removes from a fitted model's output, not its skill."""
    from landslide_engine.models.backends import create_runner
    from training.data.smalldata import load_labelled

    data = load_labelled(l4s_root)
    runner = create_runner("builtin", device="cpu")
    index = [L4S_BANDS.index(b) for b in runner.metadata.bands]
    probabilities = runner.predict(data.images[:, index])
    slope = data.images[:, L4S_BANDS.index("B13")] * divisor("B13")
    return probabilities, data.masks, slope


def objects(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """4-connected components of ``mask``: a label image and their count."""
    from scipy import ndimage

    labels, count = ndimage.label(mask, structure=[[0, 1, 0], [1, 1, 1], [0, 1, 0]])
    return labels, int(count)


def keep_at_least(mask: np.ndarray, pixels: int) -> np.ndarray:
    """``mask`` without its components smaller than ``pixels``."""
    labels, count = objects(mask)
    if count == 0 or pixels <= 1:
        return mask
    sizes = np.bincount(labels.ravel())
    keep = sizes >= pixels
    keep[0] = False
    return keep[labels]


def fold_table(probabilities: np.ndarray, labels: np.ndarray, slope: np.ndarray) -> list[str]:
    predicted = (probabilities >= 0.5) & (slope >= MIN_SLOPE_DEG)
    truth = labels.astype(bool)
    rows = [
        "| minimum area | objects | touching a landslide | false alarms | labelled landslides found | pixel F1 |",
        "|---|---|---|---|---|---|",
    ]
    truth_objects = [objects(t) for t in truth]
    n_truth = sum(count for _, count in truth_objects)
    for area in AREAS_M2:
        pixels = int(np.ceil(area / L4S_PIXEL_M2))
        kept = np.stack([keep_at_least(p, pixels) for p in predicted])
        n, hits, found = 0, 0, 0
        for patch, true_patch, (t_labels, _) in zip(kept, truth, truth_objects, strict=True):
            p_labels, p_count = objects(patch)
            n += p_count
            hits += len(set(np.unique(p_labels[true_patch]).tolist()) - {0})  # objects touching a landslide
            found += len(set(np.unique(t_labels[patch]).tolist()) - {0})  # landslides touched by an object
        tp = float(np.sum(kept & truth))
        fp, fn = float(np.sum(kept & ~truth)), float(np.sum(~kept & truth))
        f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
        rows.append(f"| {area} m² ({pixels} px) | {n} | {hits} | {n - hits} | {found} of {n_truth} | {f1:.3f} |")
    return rows


def scene_table(folder: Path) -> list[str]:
    import json

    from osgeo import ogr

    report = json.loads((folder / "run.json").read_text())
    datasource = ogr.Open(str(folder / "landslides.gpkg"))
    areas = np.array([f.GetField("area_m2") for f in datasource.GetLayer(0)], dtype=float)
    datasource = None
    rows = [
        f"Scene {Path(report['inputs']['s2'][0]).name}, {len(areas)} polygons, {areas.sum():.0f} m² "
        f"(min_area_m2 of the run: {report['min_area_m2']:g})",
        "",
        "| minimum area | polygons kept | removed | area removed |",
        "|---|---|---|---|",
    ]
    for area in AREAS_M2:
        kept = areas >= area if area else np.ones(areas.shape, bool)
        removed = areas[~kept].sum()
        rows.append(f"| {area} m² | {kept.sum()} | {(~kept).sum()} | {removed:.0f} m² ({removed / areas.sum():.1%}) |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    folds = sub.add_parser("folds")
    folds.add_argument("l4s_root", nargs="?", type=Path, default=ROOT.parent / "shared" / "data" / "landslide4sense")
    folds.add_argument("--cache", type=Path, default=ROOT / "runs" / "min_area")
    folds.add_argument("--seed", type=int, default=0)
    folds.add_argument("--folds", type=int, help="only the first N of the 5 folds (each takes minutes on a CPU)")
    shipped = sub.add_parser("builtin")
    shipped.add_argument("l4s_root", nargs="?", type=Path, default=ROOT.parent / "shared" / "data" / "landslide4sense")
    scene = sub.add_parser("scene")
    scene.add_argument("folder", type=Path)
    args = parser.parse_args()
    if args.what == "folds":
        print("\n".join(fold_table(*out_of_fold(args.l4s_root, args.cache, args.seed, args.folds))))
    elif args.what == "builtin":
        print("\n".join(fold_table(*shipped_model_on_labelled(args.l4s_root))))
    else:
        print("\n".join(scene_table(args.folder)))


if __name__ == "__main__":
    main()
