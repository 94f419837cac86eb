import numpy as np
import pytest

from sslstudio.core.explore import neighbours as nb
from sslstudio.core.explore.embedstore import run_embeddings


def _unit(n, d, seed=0, clusters=8):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, d))
    x = centres[rng.integers(0, clusters, n)] + 0.3 * rng.normal(size=(n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_exact_search_matches_a_full_sort():
    unit = _unit(500, 32)
    q = unit[:7]
    sims, ids = nb.ExactIndex(unit).search(q, 10)
    full = q @ unit.T
    ref = np.argsort(-full, axis=1)[:, :10]
    np.testing.assert_allclose(sims, np.take_along_axis(full, ref, 1), rtol=1e-6)
    assert (ids[:, 0] == np.arange(7)).all() and np.allclose(sims[:, 0], 1.0, atol=1e-5)
    assert (np.diff(sims, axis=1) <= 1e-7).all()  # best first


def test_fewer_rows_than_k_pads_with_minus_one():
    sims, ids = nb.ExactIndex(_unit(3, 8)).search(_unit(1, 8, seed=1), 5)
    assert ids[0, 3:].tolist() == [-1, -1] and np.isneginf(sims[0, 3:]).all()
    assert sorted(ids[0, :3].tolist()) == [0, 1, 2]


def test_groups_leave_out_the_query_slide():
    paths = [f"slide{i % 4}/tile{i}.png" for i in range(40)]
    unit = _unit(40, 16)
    groups = nb.group_ids(paths, "folder")
    assert len(set(groups.tolist())) == 4
    sims, ids = nb.ExactIndex(unit).search(unit[:5], 8, groups=groups, query_groups=groups[:5])
    for r in range(5):
        assert all(groups[j] != groups[r] for j in ids[r])
    by_name = nb.group_ids(
        ["a/S01_x1.png", "b/S01_x2.png", "c/S02_x1.png", "d/other.png"], r"^(S\d+)_"
    )
    assert by_name[0] == by_name[1] != by_name[2] and by_name[3] not in (by_name[0], by_name[2])
    assert nb.group_ids(paths, "") is None
    with pytest.raises(ValueError, match="regular expression"):
        nb.group_ids(paths, "(unclosed")


@pytest.mark.skipif(not nb.usearch_available(), reason="usearch not installed")
def test_approximate_index_agrees_with_exact_and_reloads(tmp_path):
    unit = _unit(3000, 32)
    exact, approx = nb.ExactIndex(unit), nb.build_index(unit, approximate=True)
    assert approx.kind == "approximate"
    q = unit[::37]
    _, ei = exact.search(q, 10)
    _, ai = approx.search(q, 10)
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(ai, ei)])
    assert recall >= 0.95
    # an indexed image asked for by its row always comes back first
    _, si = approx.search(q, 10, rows=np.arange(0, 3000, 37))
    assert (si[:, 0] == np.arange(0, 3000, 37)).all()
    # one query at a time, as the neighbour browser asks
    s1, i1 = approx.search(unit[5], 10, rows=np.array([5]))
    assert i1.shape == (1, 10) and i1[0, 0] == 5 and s1[0, 0] == pytest.approx(1.0, abs=1e-5)
    approx.save(tmp_path / "i.usearch")
    again = nb.ApproxIndex.open(unit, tmp_path / "i.usearch")
    _, ri = again.search(q, 10)
    assert np.mean([len(set(a) & set(e)) / 10 for a, e in zip(ri, ei)]) >= 0.95
    groups = np.arange(3000) % 50
    _, gi = approx.search(q, 10, groups=groups, query_groups=groups[::37])
    assert all((groups[row] != groups[r * 37]).all() for r, row in enumerate(gi))
    with pytest.raises(ValueError):
        nb.ApproxIndex.open(unit[:100], tmp_path / "i.usearch")


def test_outliers_and_near_duplicates():
    unit = _unit(200, 16)
    odd = np.zeros((1, 16), np.float32)
    odd[0, 0] = 1.0
    dup = unit[5:6] + 1e-4
    unit = np.concatenate([unit, odd, dup / np.linalg.norm(dup)]).astype(np.float32)
    index = nb.ExactIndex(unit)
    scores = nb.outlier_scores(index, k=5)
    assert int(np.argmin(scores)) == 200
    pairs = nb.near_duplicates(index, threshold=0.999)
    assert pairs[0][:2] == (5, 201) and pairs[0][2] > 0.999
    assert all(a < b for a, b, _ in pairs)


def test_index_for_a_run_returns_the_image_itself_first(trained_run):
    emb = run_embeddings(trained_run)
    index = nb.open_index(emb)
    sims, ids = index.search(emb.unit()[3:4], 5)
    assert ids[0, 0] == 3 and sims[0, 0] == pytest.approx(1.0, abs=1e-5)


def test_coarse_lists_cover_every_row_once_and_round_trip(tmp_path):
    from sslstudio.core.explore.coarse_lists import CoarseLists

    unit = _unit(2000, 16, clusters=5)
    lists = CoarseLists.build(unit, lists=20)
    assert sorted(lists.order.tolist()) == list(range(2000)) and lists.offsets[-1] == 2000
    got = lists.candidates(unit[7], probe=3)
    assert 7 in got and len(got) < 2000  # a row is found in its own list, among few
    lists.save(tmp_path / "l.npz")
    again = CoarseLists.open(tmp_path / "l.npz", 2000)
    assert np.array_equal(again.order, lists.order) and np.allclose(
        again.centroids, lists.centroids
    )
    with pytest.raises(ValueError, match="does not list"):
        CoarseLists.open(tmp_path / "l.npz", 1999)


def test_far_apart_groups_do_not_lose_the_approximate_search():
    """Rotated copies of one set: neighbours sit in the query's own copy, which the graph's
    greedy descent can miss at scale; the coarse lists' exact first step finds it."""
    rng = np.random.default_rng(1)
    base = _unit(1500, 48, clusters=30)
    copies = [base @ np.linalg.qr(rng.normal(size=(48, 48)))[0] for _ in range(12)]
    unit = np.concatenate(copies).astype(np.float32)
    q_rows = rng.choice(len(unit), 60, replace=False)
    q = unit[q_rows] + 0.01 * rng.normal(size=(60, 48)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    _, ei = nb.ExactIndex(unit).search(q, 10)
    approx = nb.ApproxIndex(unit, connectivity=4, expansion_add=8, expansion=10)  # a weak graph
    _, ai = approx.search(q, 10)
    assert np.mean([len(set(a) & set(e)) / 10 for a, e in zip(ai, ei)]) >= 0.97
