"""H&E from another source: runs' features on the Kather 2016 sample, never tuned on.

``crc-he-subset`` and ``crc-he-shifted`` come from one source; every H&E choice was tuned on
them. ``kather2016-sample`` (124 tiles, 8 classes, another lab and scanner) checks a choice on
tiles from elsewhere: leave-one-out weighted kNN (k=20, tau 0.1, cosine; a tile's own feature
left out) of each run's features (as the user gets them: blended where the run blends), beside
the same network at random init and per-tile colour statistics (standardised, the same kNN).
124 tiles: one tile is 0.8 points and the binomial standard error about +-4.5.

    python bench/other_source.py RUN [RUN ...] [--sizes 32 64] [--json FILE]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import protocol, record  # noqa: E402
from sslstudio.core.explore.embed import load_method, random_init_method  # noqa: E402
from sslstudio.core.maths.knn import knn_accuracy  # noqa: E402

FOLDER = protocol.DATA / "kather2016-sample"


def leave_one_out(features: np.ndarray, labels: np.ndarray, k: int = 20) -> float:
    f = torch.from_numpy(np.asarray(features, dtype=np.float32))
    y = torch.from_numpy(labels)
    return knn_accuracy(f, y, f, y, k=k, temperature=0.1, exclude_self=True)


def scores(runs: list[Path], size: int) -> dict:
    x, y, _ = protocol.tiles(str(FOLDER), size)
    colour = protocol.colour_stats(x)
    out: dict = {"colour": leave_one_out((colour - colour.mean(0)) / colour.std(0), y), "runs": []}
    for run in runs:
        trained, cfg, _ = load_method(run)
        row = {
            "run": str(run),
            "method": cfg.method,
            "seed": cfg.seed,
            "trained": leave_one_out(protocol.features(trained, FOLDER, size), y),
            "random_init": leave_one_out(
                protocol.features(random_init_method(cfg), FOLDER, size), y
            ),
        }
        print(
            f"{size:>3} px  {cfg.method:<12} seed {cfg.seed}  trained {row['trained']:.3f}  "
            f"random init {row['random_init']:.3f}  colour {out['colour']:.3f}  {run}",
            flush=True,
        )
        out["runs"].append(row)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--sizes", type=int, nargs="+", default=[32])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "other-source.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    result = {str(size): scores(args.runs, size) for size in args.sizes}
    record.write(args.json, {"sizes": result})
    return 0


if __name__ == "__main__":
    sys.exit(main())
