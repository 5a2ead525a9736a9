"""What the scene pipeline costs without a network: reading, warping, scaling, tiling, blending and writing.

``python bench/pipeline_overhead.py --size 2048 [--dem geographic] [--overlap 0] [--readers N] [--profile]``
runs :func:`predict_scene` on a generated scene with :class:`ConstantRunner`, a stand-in that answers
instantly, so every second measured is pipeline overhead. This is the number to watch when optimising I/O:
the pipeline keeps up with a model only if it prepares patches faster than the model consumes them; with a GPU
it is the ceiling of the whole run. ``--readers`` sets the column parts read at once, as the engine does for a
runner on an accelerator (on the CPU it reads with one thread). ``--dem geographic`` reads an SRTM-like Int16
DEM in EPSG:4326 instead of the scene's projected 30 m one, so every chunk reprojects it. ``--profile`` prints
the top of a cProfile listing (of the main thread). The output's ``cpu_ms_per_patch`` is each stage's CPU time
(of the thread that ran it) per patch.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from scenes import write_geographic_dem, write_scene

from landslide_engine.bands import L4S_BANDS
from landslide_engine.models.package import ModelMetadata
from landslide_engine.pipeline import PredictRequest, predict_scene


class ConstantRunner:
    """A runner with the interface :func:`predict_scene` needs whose network costs nothing."""

    backend = "none"
    device = "cpu"

    def __init__(self) -> None:
        n = len(L4S_BANDS)
        self.metadata = ModelMetadata.from_spec(
            "unet_plain_w16", name="constant", bands=list(L4S_BANDS), mean=[1.0] * n, std=[0.5] * n
        )

    def predict(self, x: np.ndarray) -> np.ndarray:
        """A probability that depends on the input, so patches are really read, but at no cost."""
        return np.clip(0.3 + 0.01 * x[:, 0], 0.0, 1.0).astype(np.float32)


def measure(
    size: int, work: Path, profile: bool = False, readers: int = 1, dem: str = "projected", overlap: int = 32
) -> dict:
    """Run the pipeline once on a ``size``-px scene; the run report's stage seconds and patches per second."""
    scene = write_scene(work / "scenes", size)
    dem_path = write_geographic_dem(work / "scenes", size) if dem == "geographic" else scene.dem
    with tempfile.TemporaryDirectory(dir=work) as out:
        req = PredictRequest(s2=[str(scene.s2)], dem=str(dem_path), out_dir=out, readers=readers, overlap=overlap)
        started = time.perf_counter()
        if profile:
            profiler = cProfile.Profile()
            result = profiler.runcall(predict_scene, req, runner=ConstantRunner())
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)
        else:
            result = predict_scene(req, runner=ConstantRunner())
        wall = time.perf_counter() - started
        report = json.loads(result.report.read_text())
    cpu = report["stage_cpu_seconds"]
    return {
        "size": size,
        "dem": dem,
        "overlap": overlap,
        "readers": readers,
        "patches": result.n_patches,
        "wall_s": round(wall, 2),
        "patches_per_s": round(result.n_patches / wall, 1),
        "seconds": {k: round(v, 2) for k, v in report["seconds"].items()},
        "stage_seconds": report["stage_seconds"],
        "cpu_ms_per_patch": {k: round(1000 * v / result.n_patches, 3) for k, v in cpu.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048, help="scene width and height in pixels")
    parser.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "landslide_bench")
    parser.add_argument("--readers", type=int, default=1, help="column parts read at once (accelerator runners)")
    parser.add_argument("--dem", choices=("projected", "geographic"), default="projected", help="the DEM's CRS")
    parser.add_argument("--overlap", type=int, default=32, help="patch overlap in pixels")
    parser.add_argument("--profile", action="store_true", help="print a cProfile listing")
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.size, args.work_dir, args.profile, args.readers, args.dem, args.overlap)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
