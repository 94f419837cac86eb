"""Neighbour search: exact (blocked matrix product) vs approximate (usearch HNSW) at 10k-1M.

Two data sets of 512-d unit vectors per size:
- "real": the features of a trained run (ResNet-18 SimCLR on the CIFAR-10 subset, 10k images),
  tiled up to size by copies under random rotations (each copy keeps the real neighbourhood
  structure exactly; copies point in unrelated directions) with a little noise;
- "synthetic": a Gaussian mixture (100 components) whose within-cluster spread matches the real
  embeddings' mean distance to their 10th neighbour.

Per size and index: build time, single-query latency p50/p95 (200 queries, one at a time, as the
neighbour browser asks), and for the approximate index recall@10 against exact.

    python bench/neighbours.py --run /path/to/run --sizes 10000,100000,1000000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import record  # noqa: E402
from sslstudio.core.explore import neighbours as nb  # noqa: E402


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def real_features(run: Path | None) -> np.ndarray | None:
    if run is None:
        return None
    from sslstudio.core.explore.embedstore import run_embeddings

    return run_embeddings(run).unit()


def knn_spread(x: np.ndarray) -> float:
    """Mean cosine distance to the 10th neighbour (on a 2k sample)."""
    s = x[:2000]
    sims = s @ x.T
    tenth = -np.partition(-sims, 10, axis=1)[:, 10]
    return float(np.mean(1 - tenth))


def tiled(real: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """The real set, then copies of it under random rotations (plus a little noise) up to n rows.

    A rotation keeps every within-copy similarity exactly (the real neighbourhood structure,
    repeated), while copies land in unrelated directions. Copies that merely add noise would
    instead put a hundred near-ties around every point, which no index can order.
    """
    d = real.shape[1]
    reps = -(-n // len(real))
    out = np.empty((n, d), np.float32)
    for r in range(reps):
        lo, hi = r * len(real), min(n, (r + 1) * len(real))
        block = real[: hi - lo]
        if r:
            q, _ = np.linalg.qr(rng.standard_normal((d, d)))
            block = block @ q.astype(np.float32) + 0.002 * rng.standard_normal(
                block.shape, dtype=np.float32
            )
        out[lo:hi] = block
    return unit(out)


def mixture(n: int, d: int, spread: float, rng: np.random.Generator) -> np.ndarray:
    centres = unit(rng.standard_normal((100, d), dtype=np.float32))
    sigma = np.sqrt(spread / d)
    out = np.empty((n, d), np.float32)
    for s in range(0, n, 100_000):
        m = min(n, s + 100_000) - s
        out[s : s + m] = centres[rng.integers(0, 100, m)] + sigma * rng.standard_normal(
            (m, d), dtype=np.float32
        )
    return unit(out)


def latency(index, queries: np.ndarray, k: int = 10) -> tuple[float, float, np.ndarray]:
    times, ids = [], []
    index.search(queries[:1], k)  # warm-up
    for q in queries:
        t0 = time.perf_counter()
        _, i = index.search(q[None], k)
        times.append(time.perf_counter() - t0)
        ids.append(i[0])
    t = np.array(times) * 1000
    return float(np.percentile(t, 50)), float(np.percentile(t, 95)), np.array(ids)


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--run", type=Path, help="a trained run whose embeddings are the 'real' set")
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--sets", default="real,synthetic")
    ap.add_argument("--json", default=str(ROOT / "bench" / "results" / "neighbours.json"))
    ap.add_argument(
        "--connectivity", type=int, default=None, help="HNSW graph degree (default: the studio's)"
    )
    ap.add_argument(
        "--expansion-add", type=int, default=None, help="build-time ef (default: the studio's)"
    )
    ap.add_argument(
        "--ef",
        default="",
        help="comma list of search-time ef to sweep on one index (default: the studio's)",
    )
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    real = real_features(args.run)
    spread = knn_spread(real) if real is not None else 0.3
    sets = [s for s in args.sets.split(",") if s != "real" or real is not None]
    print(
        f"threads {torch.get_num_threads()}, usearch {'yes' if nb.usearch_available() else 'no'}, "
        f"10th-neighbour cosine distance of the real set {spread:.3f}"
    )
    print(
        f"\n{'data':<10} {'N':>9} {'index':<12} {'build s':>8} {'p50 ms':>8} {'p95 ms':>8} "
        f"{'recall@10':>10}"
    )
    rows = []
    for name in sets:
        for n in [int(s) for s in args.sizes.split(",")]:
            x = (
                tiled(real, n, rng)
                if name == "real"
                else mixture(n, 512 if real is None else real.shape[1], spread, rng)
            )
            q_rows = rng.choice(n, args.queries, replace=False)
            queries = unit(
                x[q_rows] + 0.01 * rng.standard_normal(x[q_rows].shape, dtype=np.float32)
            )
            t0 = time.perf_counter()
            exact = nb.ExactIndex(x)
            build = time.perf_counter() - t0
            p50, p95, exact_ids = latency(exact, queries)
            rows.append(
                {
                    "data": name,
                    "n": n,
                    "index": "exact",
                    "build_s": build,
                    "p50_ms": p50,
                    "p95_ms": p95,
                    "recall_at_10": 1.0,
                }
            )
            print(
                f"{name:<10} {n:>9} {'exact':<12} {build:>8.2f} {p50:>8.2f} {p95:>8.2f} "
                f"{1.0:>10.3f}",
                flush=True,
            )
            if nb.usearch_available():
                params = {
                    k: v
                    for k, v in (
                        ("connectivity", args.connectivity),
                        ("expansion_add", args.expansion_add),
                    )
                    if v
                }
                t0 = time.perf_counter()
                approx = nb.ApproxIndex(x, **params)
                build = time.perf_counter() - t0
                for ef in [int(e) for e in args.ef.split(",") if e] or [
                    approx.index.expansion_search
                ]:
                    approx.index.expansion_search = ef
                    p50, p95, ids = latency(approx, queries)
                    recall = float(
                        np.mean([len(set(a) & set(e)) / 10 for a, e in zip(ids, exact_ids)])
                    )
                    rows.append(
                        {
                            "data": name,
                            "n": n,
                            "index": "approximate",
                            "build_s": build,
                            "p50_ms": p50,
                            "p95_ms": p95,
                            "recall_at_10": recall,
                            "ef": ef,
                            **params,
                        }
                    )
                    label = f"approx ef{ef}"
                    print(
                        f"{name:<10} {n:>9} {label:<12} {build:>8.2f} {p50:>8.2f} {p95:>8.2f} "
                        f"{recall:>10.3f}",
                        flush=True,
                    )
                del approx
            del exact, x
    record.write(
        Path(args.json),
        {
            "threads": torch.get_num_threads(),
            "run": str(args.run) if args.run else None,
            "knn_spread": spread,
            "rows": rows,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
