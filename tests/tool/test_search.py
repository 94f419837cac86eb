"""Exact blocked search equals brute force; the approximate index, when usearch is installed,
finds nearly the same neighbours and reports exact cosines."""

from __future__ import annotations

import numpy as np
import pytest

from sslstudio.tool import search
from sslstudio.tool.search import NeighbourIndex, exact_search, usearch_available


def _unit(n: int, d: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("block_floats", [1, 6000, 1 << 24])
def test_blocked_equals_brute_force(monkeypatch, block_floats):
    monkeypatch.setattr(search, "_BLOCK_FLOATS", block_floats)  # blocks of 1024, 2000 or all rows
    emb, q = _unit(2500, 12), _unit(3, 12, seed=1)
    scores, idx = exact_search(emb, q, 7)
    full = q @ emb.T
    ref = np.argsort(-full, axis=1, kind="stable")[:, :7]
    np.testing.assert_array_equal(idx, ref)
    np.testing.assert_allclose(scores, np.take_along_axis(full, ref, 1), rtol=1e-6)


def test_self_first_k_capped_and_ties_by_index():
    emb = _unit(5, 4)
    emb = np.concatenate([emb, emb[:1]])  # row 5 duplicates row 0
    scores, idx = NeighbourIndex(emb).search(emb[:1], 50)
    assert idx.shape == (1, 6)
    assert list(idx[0, :2]) == [0, 5] and scores[0, 0] == pytest.approx(1.0, abs=1e-6)
    assert np.all(np.diff(scores[0]) <= 0)


def test_bad_arguments():
    with pytest.raises(ValueError, match="k must be >= 1"):
        NeighbourIndex(_unit(3, 2)).search(_unit(1, 2), 0)
    with pytest.raises(ValueError, match=r"\(M, D\)"):
        NeighbourIndex(np.zeros(3, np.float32))


@pytest.mark.skipif(not usearch_available(), reason="usearch not installed")
def test_approximate_recall_and_exact_scores():
    emb, q = _unit(3000, 16), _unit(20, 16, seed=2)
    approx = NeighbourIndex(emb, approximate="auto", min_items=1000)
    assert approx.approximate
    assert not NeighbourIndex(emb, approximate="auto").approximate  # small: exact is cheaper
    scores, idx = approx.search(q, 10)
    _, ref = exact_search(emb, q, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(idx, ref)])
    assert recall >= 0.9
    np.testing.assert_allclose(scores, np.einsum("qd,qkd->qk", q, emb[idx]), rtol=1e-5)
    one_s, one_i = approx.search(q[3], 10)  # one query: usearch answers with another type
    assert one_s.shape == one_i.shape == (1, 10) and set(one_i[0]) == set(idx[3])
    all_s, all_i = approx.search(q[:2], 3000)  # more than the graph returns: exact rows
    np.testing.assert_array_equal(all_i, exact_search(emb, q[:2], 3000)[1])


def test_approximate_on_without_usearch(monkeypatch):
    monkeypatch.setattr(search, "usearch_available", lambda: False)
    with pytest.raises(ValueError, match="pip install usearch"):
        NeighbourIndex(_unit(10, 4), approximate="on")
    assert not NeighbourIndex(_unit(10, 4), approximate="auto", min_items=1).approximate
