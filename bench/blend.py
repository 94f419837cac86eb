"""Weight-space blend of a run's checkpoint with its own step-0 weights, share by share.

Features from ``lerp(trained, step-0, share)`` (``RunConfig.init_blend``; as WiSE-FT) scored by
bench/protocol.py: kNN on the benchmark's val split and, for H&E, on ``crc-he-shifted``, beside
random init (share 1) and the trained weights (share 0). The step-0 weights are the run's
``init`` checkpoint when it has one, else the same seeded network rebuilt
(``random_init_method``: identical, tests/core/test_init_blend.py).

    python bench/blend.py RUN_DIR --data crc-he-subset
    python bench/blend.py RUN_DIR --data cifar10-subset --checkpoint final --shares 0,0.5,1
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import protocol, record  # noqa: E402
from sslstudio.core.explore.embed import random_init_method  # noqa: E402
from sslstudio.core.train import checkpoints as ckpt  # noqa: E402
from sslstudio.core.train.runs import load_run_config  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("run", type=Path)
    ap.add_argument("--data", default="crc-he-subset")
    ap.add_argument("--checkpoint", default="final")
    ap.add_argument("--shares", default="0,0.3,0.5,0.7,1")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    cfg = dataclasses.replace(load_run_config(args.run), init_blend=0.0, device="cpu")
    trained, _, _ = ckpt.load_checkpoint(args.run / "checkpoints" / args.checkpoint)
    init_dir = args.run / "checkpoints" / "init"
    model = random_init_method(cfg)
    if init_dir.is_dir():
        init = ckpt.load_checkpoint(init_dir)[0]
    else:  # copies: the model's own tensors are overwritten by the first load_state_dict
        init = {k: v.detach().clone() for k, v in model.state_dict().items()}
    rows = []
    for share in (float(s) for s in args.shares.split(",")):
        model.load_state_dict(ckpt.blend_with_init(trained, init, share))
        scores = protocol.knn_scores(model.eval(), args.data, cfg.image_size, cfg.input_norm)
        rows.append({"share_of_step0": share, **scores})
        print(
            f"share of step 0 {share:.2f}: " + "  ".join(f"{k} {v:.3f}" for k, v in scores.items())
        )
    out = args.json or ROOT / "bench" / "results" / f"blend-{args.run.name}.json"
    record.write(
        out,
        {
            "run": str(args.run),
            "checkpoint": args.checkpoint,
            "data": args.data,
            "image_size": cfg.image_size,
            "rows": rows,
            "colour_baseline": protocol.colour_baseline(str(protocol._root(args.data)), 32),
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
