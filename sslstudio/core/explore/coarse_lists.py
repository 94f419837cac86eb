"""Coarse inverted lists: a safety net under the approximate neighbour index.

An HNSW graph answers by greedy descent. When the vectors form far-apart groups (features of
different stains, scanners or datasets in one folder; in the benchmark, rotated copies of a
real set), the descent can end in the wrong group and no search width brings it back: recall
at a million rows stayed at 0.75 (0.88 with a denser graph) for every ``ef`` from 320 to 2560.
These lists make the first step exact: rows are grouped under ~√N spherical k-means centroids,
a query scores every centroid, and the rows of its ``probe`` nearest lists join the graph's
candidates, which are then re-scored exactly
(:class:`~sslstudio.core.explore.neighbours.ApproxIndex`).
numpy only; saved as plain arrays beside the graph.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

SAMPLE = 50_000  # rows the centroids are fitted on
ITERATIONS = 8
PROBE = 8  # lists searched per query


class CoarseLists:
    """``centroids`` (k, d) unit rows; the rows of list c are ``order[offsets[c]:offsets[c+1]]``."""

    def __init__(self, centroids: np.ndarray, order: np.ndarray, offsets: np.ndarray) -> None:
        self.centroids, self.order, self.offsets = centroids, order, offsets

    @classmethod
    def build(cls, unit: np.ndarray, *, seed: int = 0, lists: int | None = None) -> CoarseLists:
        n = len(unit)
        k = lists or max(1, min(n, round(math.sqrt(n))))
        rng = np.random.default_rng(seed)
        sample = np.asarray(unit[np.sort(rng.choice(n, min(n, SAMPLE), replace=False))], np.float32)
        centroids = sample[rng.choice(len(sample), k, replace=False)].copy()
        for _ in range(ITERATIONS):  # spherical k-means: assign by cosine, re-normalised means
            label = _nearest(sample, centroids)
            sums = np.zeros_like(centroids)
            np.add.at(sums, label, sample)
            norms = np.linalg.norm(sums, axis=1, keepdims=True)
            empty = norms[:, 0] == 0
            sums[empty] = sample[rng.choice(len(sample), int(empty.sum()))]  # reseed empty lists
            centroids = sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
        label = _nearest(unit, centroids)
        order = np.argsort(label, kind="stable").astype(np.int64)
        offsets = np.zeros(k + 1, np.int64)
        np.cumsum(np.bincount(label, minlength=k), out=offsets[1:])
        return cls(centroids.astype(np.float32), order, offsets)

    def candidates(self, query: np.ndarray, probe: int = PROBE) -> np.ndarray:
        """Rows of the ``probe`` lists whose centroids are nearest to ``query`` (a unit row)."""
        scores = self.centroids @ query
        p = min(probe, len(scores))
        top = np.argpartition(-scores, p - 1)[:p]
        return np.concatenate([self.order[self.offsets[c] : self.offsets[c + 1]] for c in top])

    def save(self, path: Path) -> None:
        tmp = path.with_name(f".tmp-{path.name}")
        with open(tmp, "wb") as f:
            np.savez(f, centroids=self.centroids, order=self.order, offsets=self.offsets)
        tmp.replace(path)

    @classmethod
    def open(cls, path: Path, n: int) -> CoarseLists:
        """ValueError when the file does not describe ``n`` rows."""
        with np.load(path, allow_pickle=False) as z:
            lists = cls(z["centroids"], z["order"], z["offsets"])
        if len(lists.order) != n or lists.offsets[-1] != n:
            raise ValueError(f"{path} does not list these rows")
        return lists


def _nearest(x: np.ndarray, centroids: np.ndarray, block: int = 65_536) -> np.ndarray:
    out = np.empty(len(x), np.int64)
    for s in range(0, len(x), block):
        out[s : s + block] = np.argmax(
            np.asarray(x[s : s + block], np.float32) @ centroids.T, axis=1
        )
    return out
