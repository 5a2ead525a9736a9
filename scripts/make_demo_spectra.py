"""Recompute the per-class band statistics the synthetic demo scene is drawn from.

Reads the labelled Landslide4Sense patches (``../shared/data/landslide4sense`` by
default) and writes ``landslide_engine/demo_spectra.json``: for landslide and
background pixels separately, the mean, standard deviation and correlation of the
14 bands in Landslide4Sense units. Only these summary statistics are committed;
they cannot reconstruct the patches.

    .venv/bin/python scripts/make_demo_spectra.py [ROOT]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from landslide_engine.h5io import read_l4s_image, read_l4s_mask

ROOT = Path(__file__).resolve().parents[1]


def main(data_root: Path) -> None:
    images = sorted((data_root / "TrainData" / "img").glob("image_*.h5"))
    pixels, labels = [], []
    for img_path in images:
        mask_path = img_path.parent.parent / "mask" / img_path.name.replace("image_", "mask_")
        pixels.append(read_l4s_image(img_path).reshape(14, -1).T)
        labels.append(read_l4s_mask(mask_path).reshape(-1).astype(bool))
    x, y = np.concatenate(pixels), np.concatenate(labels)
    stats = {"source": f"{len(images)} labelled Landslide4Sense TrainData patches", "units": "l4s", "classes": {}}
    for name, sel in (("background", ~y), ("landslide", y)):
        xs = x[sel].astype(np.float64)
        stats["classes"][name] = {
            "pixels": int(sel.sum()),
            "mean": np.round(xs.mean(0), 5).tolist(),
            "std": np.round(xs.std(0), 5).tolist(),
            "corr": np.round(np.corrcoef(xs.T), 4).tolist(),
        }
    out = ROOT / "landslide_engine" / "demo_spectra.json"
    out.write_text(json.dumps(stats, indent=1) + "\n")
    print(f"wrote {out} from {len(images)} patches")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "data" / "landslide4sense")
