"""Nearest bundled images by cosine similarity: exact by default, approximate when it pays.

Exact search is a blocked matrix product over the (M, D) embeddings with a running top-k, so
memory stays at one (Q, block) score matrix whatever M is: 1 M x 512 rows cost ~0.3 s per
query batch on a laptop core. An approximate HNSW index (usearch) answers in microseconds but
takes minutes to build for a million rows, so it is only worth it in a long-lived server over a
large bundle: ``approximate="auto"`` uses it there when usearch is installed (it is optional,
never a dependency). Its candidates are rescored exactly, so the scores are always true
cosines; only recall is approximate.
"""

from __future__ import annotations

import importlib.util
from typing import Literal

import numpy as np

APPROX_MIN_ITEMS = 200_000  # below this, exact search of one query takes < 50 ms
_BLOCK_FLOATS = 16 << 20  # scores per block: (Q x block) float32 = 64 MB

Approximate = Literal["off", "auto", "on"]


def usearch_available() -> bool:
    return importlib.util.find_spec("usearch") is not None


class NeighbourIndex:
    """Cosine top-k over L2-normalised rows; ``search`` returns (scores, indices), best first."""

    def __init__(
        self,
        embeddings: np.ndarray,
        *,
        approximate: Approximate = "off",
        min_items: int = APPROX_MIN_ITEMS,
    ) -> None:
        if embeddings.ndim != 2:
            raise ValueError(f"embeddings must be (M, D), got shape {embeddings.shape}")
        self.embeddings = embeddings
        self._hnsw = None
        if approximate == "on" and not usearch_available():
            raise ValueError("approximate search needs the usearch package: pip install usearch")
        use = approximate == "on" or (
            approximate == "auto" and len(embeddings) >= min_items and usearch_available()
        )
        if use and len(embeddings):
            from usearch.index import Index

            self._hnsw = Index(ndim=embeddings.shape[1], metric="cos", dtype="f32")
            self._hnsw.add(np.arange(len(embeddings)), np.ascontiguousarray(embeddings))

    @property
    def approximate(self) -> bool:
        return self._hnsw is not None

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(Q, D) normalised queries -> scores (Q, k') float32 and indices (Q, k') int64.

        k' = min(k, M). Equal scores are listed by index, so output order is deterministic.
        """
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        k = min(k, len(self.embeddings))
        if k == 0:
            return np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64)
        if self._hnsw is not None:
            return self._approximate(q, k)
        return exact_search(self.embeddings, q, k)

    def _approximate(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        assert self._hnsw is not None
        found = self._hnsw.search(q, k)
        if hasattr(found, "counts"):  # BatchMatches
            keys = np.asarray(found.keys, np.int64).reshape(len(q), -1)
            counts = np.asarray(found.counts).reshape(len(q))
        else:  # one query: usearch answers with a plain Matches, trimmed to what it found
            keys = np.asarray(found.keys, np.int64).reshape(1, -1)
            counts = np.array([keys.shape[1]])
        keys = np.pad(keys, ((0, 0), (0, max(0, k - keys.shape[1]))))[:, :k]  # (Q, k)
        scores, idx = _sorted(np.einsum("qd,qkd->qk", q, self.embeddings[keys]), keys)
        short = counts < k  # the graph found fewer than k: those rows are answered exactly
        if short.any():
            scores[short], idx[short] = exact_search(self.embeddings, q[short], k)
        return scores.astype(np.float32), idx


def exact_search(emb: np.ndarray, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Blocked ``q @ emb.T`` keeping a running top-k per query."""
    block = max(1024, _BLOCK_FLOATS // max(1, len(q)))
    best_s = np.empty((len(q), 0), np.float32)
    best_i = np.empty((len(q), 0), np.int64)
    for start in range(0, len(emb), block):
        s = q @ emb[start : start + block].T  # (Q, b) cosines
        kk = min(k, s.shape[1])
        top = np.argpartition(-s, kk - 1, axis=1)[:, :kk]  # (Q, kk), unordered
        best_s = np.concatenate([best_s, np.take_along_axis(s, top, 1)], axis=1)
        best_i = np.concatenate([best_i, top + start], axis=1)
        if best_s.shape[1] > k:
            keep = np.argpartition(-best_s, k - 1, axis=1)[:, :k]
            best_s = np.take_along_axis(best_s, keep, 1)
            best_i = np.take_along_axis(best_i, keep, 1)
    return _sorted(best_s, best_i)


def _sorted(scores: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.lexsort((idx, -scores), axis=-1)  # by score descending, then index ascending
    return np.take_along_axis(scores, order, 1), np.take_along_axis(idx, order, 1)
