"""Label a few, classify the rest: linear-probe and kNN accuracy from 10 and 100 labels per class.

Features of a trained run beside the same network at random initialisation (same seed, same
weights at step 0), on a labelled benchmark set: labels drawn from the train split (5 draws
per budget), accuracy measured on the test split. The classifier is the studio's own
(``sslstudio.core.explore.classify``: class-balanced logistic regression on L2-normalised features).

    python bench/probe.py --run /path/to/cifar-run --data ../shared/data/cifar10-subset
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import record  # noqa: E402
from sslstudio.core.explore import classify as cl  # noqa: E402
from sslstudio.core.explore.embed import embed_folder, load_method, random_init_method  # noqa: E402


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def features(method, data: Path, size: int):
    tr = embed_folder(method, data / "train", size)
    te = embed_folder(method, data / ("test" if (data / "test").is_dir() else "val"), size)
    return unit(tr.features), tr.labels, unit(te.features), te.labels, tr.classes


def evaluate(ftr, ytr, fte, yte, classes, per_class: int, kind: str, draws: int) -> list[float]:
    accs = []
    for d in range(draws):
        rng = np.random.default_rng(d)
        pick = np.concatenate(
            [
                rng.choice(np.nonzero(ytr == c)[0], per_class, replace=False)
                for c in range(len(classes))
            ]
        )
        model = cl.fit(kind, ftr[pick], ytr[pick], classes)
        accs.append(float((model.probabilities(fte).argmax(1) == yte).mean()))
    return accs


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument(
        "--data",
        type=Path,
        required=True,
        help="folder with train/ and test/ (or val/) class subfolders",
    )
    ap.add_argument("--labels", default="10,100", help="labels per class")
    ap.add_argument("--draws", type=int, default=5)
    ap.add_argument("--json", default=str(ROOT / "bench" / "results" / "probe.json"))
    args = ap.parse_args()
    method, cfg, ck = load_method(args.run)
    nets = {"trained": method, "random init": random_init_method(cfg)}
    rows = []
    print(
        f"{cfg.method} {cfg.backbone} at {cfg.image_size} px, {ck.name}; {args.data.name}; "
        f"{args.draws} draws"
    )
    print(f"\n{'features':<12} {'labels/class':>12} {'classifier':<8} {'accuracy':>9} {'± sd':>7}")
    feats = {name: features(net, args.data, cfg.image_size) for name, net in nets.items()}
    for per_class in [int(x) for x in args.labels.split(",")]:
        for kind in ("linear", "knn"):
            for name in nets:
                ftr, ytr, fte, yte, classes = feats[name]
                accs = evaluate(ftr, ytr, fte, yte, classes, per_class, kind, args.draws)
                rows.append(
                    {
                        "features": name,
                        "labels_per_class": per_class,
                        "classifier": kind,
                        "accuracy": float(np.mean(accs)),
                        "sd": float(np.std(accs)),
                        "draws": accs,
                    }
                )
                print(
                    f"{name:<12} {per_class:>12} {kind:<8} {np.mean(accs):>9.3f} "
                    f"{np.std(accs):>7.3f}",
                    flush=True,
                )
    record.write(
        Path(args.json),
        {
            "threads": torch.get_num_threads(),
            "run": str(args.run),
            "checkpoint": str(ck),
            "data": str(args.data),
            "rows": rows,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
