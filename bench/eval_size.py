"""Reading a run's features at another resolution than it trained at, on both H&E query sets.

A network trained on random crops of 25-100 % of a tile sees tissue magnified ~1.3x on average
(the crop is resized to the training size); the evaluation view is the whole tile at that same
size, so tissue looks smaller than anything it trained on ("FixRes", Touvron et al. 2019). This
bench embeds the whole tile at several sizes and scores weighted kNN (bench/protocol.py: memory
``crc-he-subset/train``, queries ``val`` and ``crc-he-shifted``) for the run's features (blended
as the user gets them) and for the same network at random init, read the same way.

Two ways to a larger view: the tile decoded at that size (more detail), or decoded at the
training size and enlarged (``--decoded 32``: the same pixels, only magnified).

    python bench/eval_size.py RUN [RUN ...] --sizes 32 40 48 64 [--decoded 32] [--json FILE]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import protocol, record  # noqa: E402
from sslstudio.core.explore.embed import load_method, random_init_method  # noqa: E402

DATA = protocol.DATA / "crc-he-subset"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", type=Path, nargs="+")
    ap.add_argument("--sizes", type=int, nargs="+", default=[32, 40, 48, 64])
    ap.add_argument("--checkpoint", default="final")
    ap.add_argument("--decoded", type=int, default=0, help="decode tiles at this size first")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "eval-size.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    colour = protocol.colour_baseline(str(DATA), 32)
    print(f"colour statistics: val {colour['val']:.3f}  shifted {colour['shifted']:.3f}")
    head = ("run", "size", "val", "rand", "gain", "shifted", "rand", "gain")
    print("{:<34} {:>4} {:>7} {:>7} {:>7} {:>8} {:>7} {:>7}".format(*head))
    out = []
    for run in args.runs:
        method, cfg, _ = load_method(run, which=args.checkpoint, device=torch.device("cpu"))
        rand = random_init_method(cfg).cpu().eval()
        norm = getattr(cfg, "input_norm", "none")
        for size in args.sizes:
            t = protocol.knn_scores(method, DATA, size, norm, args.decoded or None)
            r = protocol.knn_scores(rand, DATA, size, norm, args.decoded or None)
            row = {
                "run": str(run),
                "trained_at": cfg.image_size,
                "size": size,
                "decoded": args.decoded or size,
                "trained": t,
                "random_init": r,
            }
            out.append(row)
            print(
                f"{run.name[-34:]:<34} {size:>4} {t['val']:>7.3f} {r['val']:>7.3f} "
                f"{t['val'] - r['val']:>+7.3f} {t['shifted']:>8.3f} {r['shifted']:>7.3f} "
                f"{t['shifted'] - r['shifted']:>+7.3f}",
                flush=True,
            )
    record.write(args.json, {"colour_baseline": colour, "rows": out})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
