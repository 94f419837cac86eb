"""The check folder: labelled images from other slides, asked at every probe (issue 23).

The training folder's labelled images answer them by kNN, with the features the user gets,
beside step 0; that verdict replaces the in-run guess and picks the checkpoint. A folder that
cannot be checked is refused before the first step, with what to fix.
"""

from __future__ import annotations

import numpy as np
import pytest

from sslstudio.config import validate
from sslstudio.core.events import MonitorLogged, RunFinished, RunStarted
from sslstudio.core.train import check as ck
from sslstudio.core.train.trainer import train
from sslstudio.core.train.verdict import judge, recommendation
from sslstudio.errors import ConfigError
from tests.shapes import make_shapes_folder, tiny_config


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    base = tmp_path_factory.mktemp("check")
    train_dir = make_shapes_folder(
        base / "train", per_class=12, size=24, shapes=("circle", "square")
    )
    # other "slides": other draws of the same classes, one class the training folder lacks
    check_dir = make_shapes_folder(
        base / "new", per_class=6, size=24, seed=5, shapes=("circle", "square", "cross")
    )
    return base, train_dir, check_dir


def _events(cfg):
    return list(train(cfg))


def test_every_probe_is_checked_and_decides_against_step_0(folders, module_home):
    base, train_dir, check_dir = folders
    cfg = tiny_config(train_dir, base / "run", check_folder=str(check_dir), epochs=3)
    events = _events(cfg)
    started = next(e for e in events if isinstance(e, RunStarted))
    assert any(
        "12 labelled image(s) of the check folder (circle, square)" in n for n in started.notices
    )
    assert any("left out: cross" in n for n in started.notices)  # its class is not trained
    probes = [e for e in events if isinstance(e, MonitorLogged)]
    assert probes[0].step == 0 and probes[0].check_n == 12
    assert probes[0].check_ref is None and probes[0].verdict_sign is None  # random init itself
    ref = probes[0].check_top1
    for p in probes[1:]:
        assert p.check_ref == pytest.approx(ref)  # every later probe is paired with step 0
        assert p.check_noise is not None and p.check_noise >= 0
        expected = judge(p.check_top1, ref, p.check_noise)
        assert p.verdict_sign == expected
        assert "on your 12 check images from other slides" in p.verdict
    done = next(e for e in events if isinstance(e, RunFinished))
    assert "check images from other slides" in done.advice


def test_the_check_reads_the_features_the_user_gets(folders, module_home):
    """A blended run checks its blended features: the final probe's score is the blended
    network's score, computed here again from the saved checkpoints."""
    import torch

    from sslstudio.core.explore.embed import load_method
    from sslstudio.core.train.check import hits, load_check

    base, train_dir, check_dir = folders
    cfg = tiny_config(
        train_dir, base / "blended", check_folder=str(check_dir), init_blend=0.5, epochs=2
    )
    events = _events(cfg)
    final = [e for e in events if isinstance(e, MonitorLogged)][-1]
    method, run_cfg, _ = load_method(base / "blended", which="final", device=torch.device("cpu"))
    from sslstudio.core.data.cache import build_cache
    from sslstudio.core.data.indexstore import open_index
    from sslstudio.paths import cache_dir

    index = open_index(str(train_dir), cache_dir())
    data = build_cache(index, 24, cache_dir())
    gen = load_check(str(check_dir), list(index.classes), data.labels(), 24, None, run_cfg.seed)
    try:
        while True:
            next(gen)
    except StopIteration as stop:
        check_set = stop.value
    got = hits(method, check_set, data, data.labels(), run_cfg.image_size, torch.device("cpu"))
    assert float(got.mean()) == pytest.approx(final.check_top1)
    done = next(e for e in events if isinstance(e, RunFinished))
    assert "blended 50% with 50% of the untrained network" in done.advice
    # the bundle's metrics are the final probe's, check included
    from sslstudio.core.export.bundle import export_bundle, read_manifest

    metrics = read_manifest(export_bundle(base / "blended", base / "bundle"))["metrics"]
    assert metrics["check_top1"] == pytest.approx(final.check_top1)
    assert metrics["check_n"] == 12 and metrics["check_ref"] == pytest.approx(final.check_ref)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda b, t, c: (b / "unlabelled", c), "needs labels on the training folder"),
        (lambda b, t, c: (t, b / "flat"), "has no classes"),
        (lambda b, t, c: (t, b / "other"), "shares 1 class name"),
    ],
)
def test_a_folder_that_cannot_be_checked_is_refused_before_the_first_step(
    folders, module_home, make, message
):
    base, train_dir, check_dir = folders
    unlabelled = base / "unlabelled"
    if not unlabelled.exists():
        make_shapes_folder(base / "tmp_u", per_class=8, size=24, shapes=("circle",))
        (base / "tmp_u" / "circle").rename(unlabelled)
        flat = base / "flat"
        make_shapes_folder(base / "tmp_f", per_class=4, size=24, seed=3, shapes=("square",))
        (base / "tmp_f" / "square").rename(flat)
        make_shapes_folder(base / "other", per_class=4, size=24, shapes=("circle", "triangle"))
    data, check = make(base, train_dir, check_dir)
    cfg = tiny_config(data, base / f"refused-{message[:5]}", check_folder=str(check))
    seen = []
    with pytest.raises(ConfigError, match=message):
        for ev in train(cfg):
            seen.append(ev)
    assert not any(isinstance(e, RunStarted) for e in seen)


def test_a_check_folder_inside_the_training_folder_is_refused(folders):
    base, train_dir, _ = folders
    cfg = tiny_config(train_dir, base / "x", check_folder=str(train_dir / "circle"))
    with pytest.raises(ConfigError, match="lies inside the training folder"):
        validate(cfg)
    with pytest.raises(ConfigError, match="is not a folder"):
        validate(tiny_config(train_dir, base / "x", check_folder=str(base / "missing")))


def test_queries_are_stratified_and_memory_is_capped(monkeypatch):
    monkeypatch.setattr(ck, "QUERIES", 100)
    monkeypatch.setattr(ck, "MEMORY", 50)
    check_labels = np.array([0] * 300 + [1] * 100 + [2] * 5)  # check classes a, b, z
    train_labels = np.array([0, 1] * 200)
    rows, labels, memory, classes, dropped = ck.match(
        ["a", "b", "z"], check_labels, ["a", "b"], train_labels, "new"
    )
    assert classes == ("a", "b") and dropped == ("z",)
    assert (labels == 0).sum() == 75 and (labels == 1).sum() == 25  # each class keeps its share
    assert len(memory) == 50 and len(set(memory.tolist())) == 50
    assert (check_labels[rows] < 2).all()


def _final(score: float, sign: int) -> MonitorLogged:
    """The last probe of a run with 200 check images (random init scored 0.60 on them)."""
    return MonitorLogged(
        step=100,
        std_sqrt_d=1.0,
        rankme=10.0,
        embed_dim=8,
        check_top1=score,
        check_ref=0.60,
        check_noise=0.05,
        check_n=200,
        verdict_sign=sign,
    )


def test_recommendation_by_the_check_picks_an_earlier_step_only_beyond_its_noise():
    sel = {
        "signal": "check_top1",
        "check_ref": 0.60,
        "best_step": 40,
        "best_score": 0.80,
        "best_sign": 1,
        "best": "best-path",
    }
    final = _final(0.70, 1)
    path, why = recommendation(sel, final, "final-path", "best-path", blended=False)
    assert path == "best-path" and "step 40 scores best on your 200 check images" in why
    assert "better than random init (0.600)" in why
    close = _final(0.78, 0)
    path, why = recommendation(sel, close, "final-path", "best-path", blended=False)
    assert path == "final-path" and "within the noise of this many check images" in why
    worse = _final(0.50, -1)
    sel_w = {**sel, "best_score": 0.52, "best_sign": -1}
    path, why = recommendation(sel_w, worse, "final-path", "best-path", blended=False)
    assert path == "final-path" and "NOT better than random init" in why


def test_k_is_the_benchmarks_from_a_thousand_images_and_a_fifth_below():
    assert ck.neighbours(1000) == 200 and ck.neighbours(5000) == 200
    assert ck.neighbours(500) == 100 and ck.neighbours(60) == 20 and ck.neighbours(12) == 12
    memory = np.eye(3)[[0, 0, 1, 1, 2, 2]].astype(np.float32)  # two images of each class
    import torch

    got = ck.answer(torch.from_numpy(memory), [0, 0, 1, 1, 2, 2], torch.eye(3)[[2, 0]], [2, 1])
    assert got.tolist() == [1.0, 0.0]  # the second query is class 0's image labelled 1
