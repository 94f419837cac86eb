"""Nearest neighbours by cosine similarity, exact or approximate, behind one interface.

Exact search is a blocked matrix product of unit vectors with a partial sort: no index to
build, always right, and fast enough up to tens of thousands of images. Beyond
``APPROX_THRESHOLD`` rows, when the optional ``usearch`` package is installed, an HNSW graph
answers in well under a millisecond per query at a recall we measure (bench/neighbours.py).
usearch rather than faiss or hnswlib: one small binary wheel per platform with no BLAS or
compiler needed, cosine built in, and an index file that is memory-mapped on load, so a
saved million-vector index opens instantly; hnswlib ships source only, faiss is ten times
the download for features we do not use.

Every answer can leave out the query's own *group* (tiles of one slide: same parent folder,
or the part of the file name a pattern picks) — otherwise look-alikes from the same slide
fill every answer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import numpy as np

from sslstudio.core.explore.coarse_lists import CoarseLists
from sslstudio.imaging.slides import parse_address

APPROX_THRESHOLD = 50_000
_BLOCK_ELEMENTS = 1 << 25  # query-block x rows per similarity block: ~128 MB of float32


def group_ids(paths: Sequence[str], rule: str) -> np.ndarray | None:
    """An integer group per path, or None for no grouping.

    Args:
        rule: "" (no groups), "folder" (the parent folder; for a whole-slide tile, its slide),
            or a regular expression searched in the file name: its first capture group (else
            the whole match) names the group; a name the pattern does not match is a group of
            its own.
    """
    if not rule:
        return None
    if rule == "folder":
        keys = [_slide_or_folder(p) for p in paths]
    else:
        try:
            pat = re.compile(rule)
        except re.error as exc:
            raise ValueError(
                f"group pattern {rule!r} is not a valid regular expression: {exc}"
            ) from exc
        keys = []
        for i, p in enumerate(paths):
            m = pat.search(PurePosixPath(p).name)
            keys.append(m.group(1 if m.re.groups else 0) if m else f"\0{i}")
    _, ids = np.unique(np.asarray(keys, dtype=object).astype(str), return_inverse=True)
    return ids.astype(np.int64)


def _slide_or_folder(path: str) -> str:
    tile = parse_address(path)
    return tile.slide if tile is not None else str(PurePosixPath(path).parent)


def _topk(sims: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise top k of ``(Q, N)`` similarities, best first."""
    k = min(k, sims.shape[1])
    part = (
        np.argpartition(-sims, k - 1, axis=1)[:, :k]
        if k < sims.shape[1]
        else np.tile(np.arange(sims.shape[1]), (len(sims), 1))
    )
    vals = np.take_along_axis(sims, part, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    return np.take_along_axis(vals, order, axis=1), np.take_along_axis(part, order, axis=1)


class ExactIndex:
    """Brute-force cosine search over L2-normalised rows ``(N, D)`` float32."""

    kind = "exact"

    def __init__(self, unit: np.ndarray) -> None:
        self.unit = np.ascontiguousarray(unit, dtype=np.float32)

    def __len__(self) -> int:
        return len(self.unit)

    def search(
        self,
        queries: np.ndarray,
        k: int,
        *,
        groups: np.ndarray | None = None,
        query_groups: np.ndarray | None = None,
        rows: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(sims, ids)`` each ``(Q, k)``, best first; ids -1 (sim -inf) where fewer exist.

        With ``groups`` (per row) and ``query_groups`` (per query), rows of the query's group
        are left out. ``rows``: the queries' own row ids when they are indexed images (-1
        otherwise); an approximate index then never misses the image itself.
        """
        q = np.atleast_2d(np.asarray(queries, np.float32))
        n = len(self.unit)
        kk = min(k, n)
        out_s = np.full((len(q), k), -np.inf, np.float32)
        out_i = np.full((len(q), k), -1, np.int64)
        if kk == 0:
            return out_s, out_i
        step = max(1, _BLOCK_ELEMENTS // max(n, 1))
        for s in range(0, len(q), step):
            sims = q[s : s + step] @ self.unit.T  # (q, N) cosine
            if groups is not None and query_groups is not None:
                sims[groups[None, :] == query_groups[s : s + step, None]] = -np.inf
            vals, ids = _topk(sims, kk)
            ids[~np.isfinite(vals)] = -1
            out_s[s : s + step, :kk], out_i[s : s + step, :kk] = vals, ids
        return out_s, out_i


class ApproxIndex:
    """HNSW graph (usearch) over L2-normalised rows, plus coarse inverted lists whose rows join
    the graph's candidates (:mod:`sslstudio.core.explore.coarse_lists`); answers refined by exact
    similarity."""

    kind = "approximate"

    def __init__(
        self,
        unit: np.ndarray,
        index=None,
        lists: CoarseLists | None = None,
        *,
        expansion: int = 320,
        connectivity: int = 16,
        expansion_add: int = 128,
    ) -> None:
        from usearch.index import Index

        self.unit = unit
        if index is None:
            index = Index(
                ndim=unit.shape[1],
                metric="cos",
                dtype="f16",
                connectivity=connectivity,
                expansion_add=expansion_add,
            )
            index.add(np.arange(len(unit), dtype=np.uint64), np.asarray(unit, np.float32))
        index.expansion_search = expansion
        self.index = index
        self.lists = lists if lists is not None else CoarseLists.build(unit)
        self._exact = ExactIndex(unit)

    def __len__(self) -> int:
        return len(self.unit)

    def save(self, path: Path) -> None:
        tmp = path.with_name(f".tmp-{path.name}")
        self.index.save(str(tmp))
        tmp.replace(path)
        self.lists.save(_lists_path(path))

    @classmethod
    def open(cls, unit: np.ndarray, path: Path) -> ApproxIndex:
        from usearch.index import Index

        index = Index.restore(str(path), view=True)
        if index is None or len(index) != len(unit) or index.ndim != unit.shape[1]:
            raise ValueError(f"{path} does not index these embeddings")
        return cls(unit, index, CoarseLists.open(_lists_path(path), len(unit)))

    def search(
        self,
        queries: np.ndarray,
        k: int,
        *,
        groups: np.ndarray | None = None,
        query_groups: np.ndarray | None = None,
        rows: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        q = np.atleast_2d(np.asarray(queries, np.float32))
        n = len(self.unit)
        # candidates are re-scored exactly, so over-fetching is cheap and buys recall where many
        # near-copies crowd the top (tiles of one slide; f16 storage cannot order them);
        # leaving out a group needs spare candidates too; queries still short fall back to exact
        fetch = min(n, max(4 * k, 256) if groups is None else 8 * k + 256)
        found = self.index.search(q, fetch)
        if hasattr(found, "counts"):  # BatchMatches
            keys = np.asarray(found.keys, np.int64).reshape(len(q), -1)
            counts = np.asarray(found.counts).reshape(len(q))
        else:  # one query: usearch answers with a plain Matches
            keys = np.asarray(found.keys, np.int64).reshape(1, -1)
            counts = np.array([keys.shape[1]])
        out_s = np.full((len(q), k), -np.inf, np.float32)
        out_i = np.full((len(q), k), -1, np.int64)
        for r in range(len(q)):
            cand = np.union1d(keys[r, : counts[r]], self.lists.candidates(q[r]))
            if rows is not None and rows[r] >= 0 and rows[r] not in cand:
                cand = np.append(cand, rows[r])
            if groups is not None and query_groups is not None:
                cand = cand[groups[cand] != query_groups[r]]
            if len(cand) < min(k, n) and counts[r] == fetch:
                qg = None if query_groups is None else query_groups[r : r + 1]
                s, i = self._exact.search(q[r : r + 1], k, groups=groups, query_groups=qg)
                out_s[r], out_i[r] = s[0], i[0]
                continue
            sims = self.unit[cand] @ q[r]  # exact scores for the candidates
            order = np.argsort(-sims, kind="stable")[:k]
            out_s[r, : len(order)], out_i[r, : len(order)] = sims[order], cand[order]
        return out_s, out_i


def _lists_path(path: Path) -> Path:
    return path.with_name(path.name + ".lists.npz")


def usearch_available() -> bool:
    try:
        import usearch.index  # noqa: F401
    except ImportError:
        return False
    return True


def build_index(unit: np.ndarray, *, approximate: bool | None = None) -> ExactIndex | ApproxIndex:
    """Exact below ``APPROX_THRESHOLD`` rows or without usearch; ``approximate`` forces a choice."""
    if approximate is None:
        approximate = len(unit) >= APPROX_THRESHOLD and usearch_available()
    if approximate and not usearch_available():
        raise ImportError("the approximate index needs the usearch package: pip install usearch")
    return ApproxIndex(unit) if approximate else ExactIndex(unit)


def open_index(emb, *, approximate: bool | None = None) -> ExactIndex | ApproxIndex:
    """The index for a stored embedding set: an approximate one is saved beside it, reused."""
    unit = emb.unit()
    if approximate is None:
        approximate = len(unit) >= APPROX_THRESHOLD and usearch_available()
    if not approximate:
        return ExactIndex(unit)
    path = Path(emb.location) / "index.usearch"
    if path.exists():
        try:
            return ApproxIndex.open(unit, path)
        except (ValueError, RuntimeError, OSError):
            pass  # damaged or stale: rebuilt below
    index = ApproxIndex(unit)
    index.save(path)
    return index


def neighbour_graph(
    index: ExactIndex | ApproxIndex, k: int, *, batch: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    """Each row's k nearest *other* rows: ``(sims, ids)`` of shape ``(N, k)``."""
    unit = index.unit
    n = len(unit)
    sims = np.full((n, k), -np.inf, np.float32)
    ids = np.full((n, k), -1, np.int64)
    for s in range(0, n, batch):
        rows = np.arange(s, min(n, s + batch))
        vs, vi = index.search(unit[rows], k + 1, rows=rows)
        for r, row in enumerate(rows):
            keep = vi[r] != row
            sims[row], ids[row] = vs[r][keep][:k], vi[r][keep][:k]
    return sims, ids


def outlier_scores(index: ExactIndex | ApproxIndex, k: int = 10) -> np.ndarray:
    """Mean similarity of each row to its k nearest others; the lowest are the outliers."""
    sims, _ = neighbour_graph(index, k)
    sims = np.where(np.isfinite(sims), sims, np.nan)
    return np.nan_to_num(np.nanmean(sims, axis=1), nan=-1.0)


def near_duplicates(
    index: ExactIndex | ApproxIndex, threshold: float = 0.97, k: int = 10
) -> list[tuple[int, int, float]]:
    """Pairs ``(i, j, sim)`` with i < j and similarity >= threshold, most similar first."""
    sims, ids = neighbour_graph(index, k)
    rows, cols = np.nonzero(sims >= threshold)
    pairs = {}
    for r, c in zip(rows.tolist(), cols.tolist()):
        j = int(ids[r, c])
        a, b = (r, j) if r < j else (j, r)
        pairs[(a, b)] = float(sims[r, c])
    return sorted(((a, b, s) for (a, b), s in pairs.items()), key=lambda t: -t[2])
