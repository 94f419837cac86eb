"""Where a run's features gain and where colour statistics win: kNN recall per class.

For one run (its features as the user gets them, final checkpoint), the same network at random
init and the colour-statistics baseline, on both H&E query sets of bench/protocol.py (memory
``crc-he-subset/train``; weighted kNN k=200, tau=0.1, cosine for the networks; plain k=20
Euclidean for colour). Recall of each class and top-1 overall.

    python bench/per_class.py RUN [--json FILE]
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
from sslstudio.core.maths.knn import knn_predict  # noqa: E402

DATA = protocol.DATA / "crc-he-subset"
SIZE = 32


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "per-class.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    trained, cfg, _ = load_method(args.run, which="final", device=torch.device("cpu"))
    nets = {"trained": trained, "random init": random_init_method(cfg).cpu().eval()}
    mem_x, mem_y, classes = protocol.tiles(str(DATA / "train"), SIZE)
    n = len(classes)
    out: dict = {"run": str(args.run), "classes": classes, "sets": {}}
    for name, folder in protocol.queries(DATA).items():
        q_x, q_y, _ = protocol.tiles(str(folder), SIZE)
        preds = {"colour statistics": protocol.colour_predict(mem_x, mem_y, q_x)}
        for label, net in nets.items():
            mem = torch.from_numpy(protocol.features(net, DATA / "train", SIZE))
            q = torch.from_numpy(protocol.features(net, folder, SIZE))
            preds[label] = knn_predict(mem, torch.from_numpy(mem_y), q, n, 200, 0.1).numpy()
        counts = np.bincount(q_y, minlength=n)
        print(
            f"\n{name} ({len(q_y)} tiles: "
            + ", ".join(f"{c} {k}" for c, k in zip(classes, counts, strict=True))
            + ")"
        )
        print(f"{'':<18} {'top-1':>6} " + " ".join(f"{c:>6}" for c in classes))
        rows = {}
        for label, p in preds.items():
            recall = [float((p[q_y == c] == c).mean()) for c in range(n)]
            rows[label] = {
                "top1": float((p == q_y).mean()),
                "recall": dict(zip(classes, recall, strict=True)),
            }
            print(
                f"{label:<18} {rows[label]['top1']:>6.3f} " + " ".join(f"{v:>6.2f}" for v in recall)
            )
        out["sets"][name] = {"counts": counts.tolist(), "rows": rows}
    record.write(args.json, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
