"""Test-time changes to a run's features, scored on both H&E query sets (none adopted).

Each variant changes only how features are read, not training: greyscale input, the mean of
the colour and greyscale features, each set's features centred on its own mean, batch-norm
statistics recomputed on each set (AdaBN: Li et al. 2016, a classic answer to stain shift), and
AdaBN with centring. Memory ``crc-he-subset/train``, queries ``val`` and ``crc-he-shifted``
(bench/protocol.py's kNN), for the run's features and the same network at random init.

    python bench/test_time.py RUN [--json FILE]
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import protocol, record  # noqa: E402
from sslstudio.core.explore.embed import load_method, random_init_method  # noqa: E402
from sslstudio.core.maths.knn import knn_accuracy  # noqa: E402
from sslstudio.core.transforms.views import centre_view  # noqa: E402

SIZE = 32
SETS = {
    "train": protocol.DATA / "crc-he-subset" / "train",
    "val": protocol.DATA / "crc-he-subset" / "val",
    "shifted": protocol.DATA / protocol.SHIFTED,
}


def grey(x: np.ndarray) -> np.ndarray:
    g = (x[..., 0] * 0.299 + x[..., 1] * 0.587 + x[..., 2] * 0.114).astype(np.uint8)
    return np.repeat(g[..., None], 3, axis=-1)


@torch.no_grad()
def features(method, x: np.ndarray, adabn: bool = False) -> np.ndarray:  # noqa: ANN001
    method = copy.deepcopy(method).eval()
    batches = [torch.from_numpy(x[i : i + 256]).permute(0, 3, 1, 2) for i in range(0, len(x), 256)]
    if adabn:  # this set's own batch-norm statistics (a cumulative average over the set)
        for m in method.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.reset_running_stats()
                m.momentum = None
                m.train()
        for b in batches:
            method.embed(centre_view(b, SIZE))
        method.eval()
    return np.concatenate([method.embed(centre_view(b, SIZE)).float().numpy() for b in batches])


def unit(f: np.ndarray) -> np.ndarray:
    return f / np.linalg.norm(f, axis=1, keepdims=True).clip(1e-8)


def variants(method, data: dict) -> dict[str, dict[str, float]]:  # noqa: ANN001
    plain = {k: features(method, x) for k, (x, _, _) in data.items()}
    greys = {k: features(method, grey(x)) for k, (x, _, _) in data.items()}
    ada = {k: features(method, x, adabn=True) for k, (x, _, _) in data.items()}
    feats = {
        "plain": plain,
        "greyscale": greys,
        "colour + greyscale": {k: unit(plain[k]) + unit(greys[k]) for k in data},
        "centred per set": {k: unit(plain[k]) - unit(plain[k]).mean(0) for k in data},
        "AdaBN": ada,
        "AdaBN, centred": {k: unit(ada[k]) - unit(ada[k]).mean(0) for k in data},
    }
    return {name: score(f, data) for name, f in feats.items()}


def score(f: dict[str, np.ndarray], data: dict) -> dict[str, float]:
    mem, mem_y = torch.from_numpy(f["train"]), torch.from_numpy(data["train"][1])
    return {
        q: knn_accuracy(mem, mem_y, torch.from_numpy(f[q]), torch.from_numpy(data[q][1]))
        for q in ("val", "shifted")
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "test-time.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data = {k: protocol.tiles(str(v), SIZE) for k, v in SETS.items()}
    trained, cfg, _ = load_method(args.run)
    result = {
        "trained": variants(trained, data),
        "random_init": variants(random_init_method(cfg), data),
        "colour_baseline": protocol.colour_baseline("crc-he-subset", SIZE),
    }
    for name in result["trained"]:
        t, r = result["trained"][name], result["random_init"][name]
        print(
            f"{name:<20} trained {t['val']:.3f} / {t['shifted']:.3f}   "
            f"random init {r['val']:.3f} / {r['shifted']:.3f}   (val / shifted)"
        )
    record.write(
        args.json, {"run": str(args.run), "method": cfg.method, "seed": cfg.seed, **result}
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
