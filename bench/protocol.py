"""The quality protocol every bench reports: kNN on the benchmark's own val split AND, for H&E,
on tiles from another split with shifted colours, beside random init and colour statistics.

A choice wins only if it wins on both H&E query sets (issue 23): on ``crc-he-subset/val`` (the
same split as the memory) features that key on slide colour look good; on ``crc-he-shifted``
they fall below an untrained network.

- kNN: weighted, k=200, tau=0.1, cosine; memory ``<set>/train``.
- queries: ``<set>/val``, and ``crc-he-shifted`` when the set is ``crc-he-subset``.
- colour baseline: per-tile mean and std of R, G, B (standardised with the memory's statistics),
  plain majority kNN, k=20, Euclidean.
- ``normalise``: an input normalisation (``sslstudio.imaging.stain``) applied to the decoded
  tiles before the network sees them, as it is in training and in the exported tool.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch

from sslstudio.core.data.cache import build_cache
from sslstudio.core.data.indexstore import open_index
from sslstudio.core.maths.knn import knn_accuracy
from sslstudio.core.transforms.views import centre_view
from sslstudio.imaging.stain import normalise_tiles
from sslstudio.paths import cache_dir

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SHIFTED = "crc-he-shifted"  # the other split of crc-he-subset's source (read its ABOUT.md)


def queries(data: str | Path) -> dict[str, Path]:
    """The query folders for benchmark set ``data``: always ``val``, plus the shifted H&E split."""
    root = _root(data)
    out = {"val": root / "val"}
    if root.name == "crc-he-subset":
        out["shifted"] = root.parent / SHIFTED
    return out


def _root(data: str | Path) -> Path:
    p = Path(data)
    return p if p.is_dir() else DATA / str(data)


@functools.lru_cache(maxsize=16)
def tiles(folder: str, size: int) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """``(N, size, size, 3)`` uint8 of a labelled folder (through the shared decode cache),
    labels and class names."""
    index = open_index(folder, cache_dir())
    data = build_cache(index, size, cache_dir())
    return data.batch(np.arange(len(data))), data.labels(), tuple(index.classes)


@torch.no_grad()
def features(
    method,  # noqa: ANN001
    folder: Path,
    size: int,
    normalise: str = "none",
    decoded: int | None = None,
) -> np.ndarray:
    """Backbone features of every tile of ``folder`` at ``size`` px (the embedding path's centre
    view), after the input normalisation ``normalise``; ``decoded``: the tiles are decoded at
    that size first and resized to ``size`` by the view (default: decoded at ``size``)."""
    x, _, _ = tiles(str(folder), decoded or size)
    device = next(method.parameters()).device
    method.eval()
    out = []
    for i in range(0, len(x), 256):
        b = torch.from_numpy(normalise_tiles(x[i : i + 256], normalise)).permute(0, 3, 1, 2)
        out.append(method.embed(centre_view(b.to(device), size)).float().cpu().numpy())
    return np.concatenate(out)


def knn_scores(
    method,  # noqa: ANN001
    data: str | Path,
    size: int,
    normalise: str = "none",
    decoded: int | None = None,
) -> dict[str, float]:
    """Weighted kNN top-1 per query set of ``data`` (memory: its train split); ``decoded`` as in
    :func:`features`."""
    root = _root(data)
    mem = features(method, root / "train", size, normalise, decoded)
    _, mem_y, mem_classes = tiles(str(root / "train"), size)
    scores = {}
    for name, folder in queries(root).items():
        _, y, classes = tiles(str(folder), size)
        if classes != mem_classes:
            raise ValueError(f"{folder} has classes {classes}, the memory {mem_classes}")
        q = features(method, folder, size, normalise, decoded)
        scores[name] = knn_accuracy(
            torch.from_numpy(mem),
            torch.from_numpy(mem_y),
            torch.from_numpy(q),
            torch.from_numpy(y),
            k=200,
            temperature=0.1,
        )
    return scores


def colour_stats(x: np.ndarray) -> np.ndarray:
    """Per-tile mean and std of R, G, B: ``(N, 6)`` float."""
    f = x.reshape(len(x), -1, 3).astype(np.float64)
    return np.concatenate([f.mean(1), f.std(1)], axis=1)


def colour_predict(
    mem_x: np.ndarray, mem_y: np.ndarray, q_x: np.ndarray, k: int = 20
) -> np.ndarray:
    """The colour baseline's class for each tile of ``q_x``: plain majority kNN (Euclidean) on
    per-tile colour statistics, standardised with the memory's."""
    mem = colour_stats(mem_x)
    mu, sd = mem.mean(0), mem.std(0) + 1e-9
    mem, q = (mem - mu) / sd, (colour_stats(q_x) - mu) / sd
    d = ((q[:, None, :] - mem[None, :, :]) ** 2).sum(-1)
    near = np.argsort(d, axis=1)[:, :k]
    votes = np.zeros((len(q), int(mem_y.max()) + 1))
    np.add.at(votes, (np.arange(len(q))[:, None], mem_y[near]), 1.0)
    return votes.argmax(1)


@functools.lru_cache(maxsize=8)
def colour_baseline(data: str, size: int = 32, k: int = 20) -> dict[str, float]:
    """Plain kNN (k=20, Euclidean, majority vote) on standardised per-tile colour statistics."""
    root = _root(data)
    mx, my, _ = tiles(str(root / "train"), size)
    scores = {}
    for name, folder in queries(root).items():
        qx, qy, _ = tiles(str(folder), size)
        scores[name] = float((colour_predict(mx, my, qx, k) == qy).mean())
    return scores


def report(
    trained,  # noqa: ANN001
    random_init,  # noqa: ANN001
    data: str | Path,
    size: int,
    normalise: str = "none",
) -> dict[str, dict[str, float]]:
    """Trained and random-init kNN per query set, and the colour baseline, for one run."""
    root = _root(data)
    out = {
        "trained": knn_scores(trained, root, size, normalise) if trained is not None else {},
        "random_init": knn_scores(random_init, root, size, normalise),
        "colour_baseline": colour_baseline(str(root), 32),
    }
    if normalise != "none":
        out["normalise"] = normalise
    return out


def line(result: dict[str, dict[str, float]]) -> str:
    """One line per query set: trained, random init, colour baseline and the gains."""
    rows = []
    for name, rnd in result["random_init"].items():
        t = result["trained"].get(name)
        c = result["colour_baseline"][name]
        gain = f" ({t - rnd:+.3f} vs random, {t - c:+.3f} vs colour)" if t is not None else ""
        shown = f"{t:.3f}" if t is not None else "  -  "
        rows.append(f"{name:>8}: trained {shown}  random {rnd:.3f}  colour {c:.3f}{gain}")
    return "\n".join(rows)
