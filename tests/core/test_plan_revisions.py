"""Plan revisions: out-of-memory back-off, the time budget, and the recommended checkpoint."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from sslstudio.core.events import MonitorLogged, PlanRevised, RunFailed, RunFinished, StepLogged
from sslstudio.core.train import checkpoints as ckpt
from sslstudio.core.train import deadline as deadline_mod
from sslstudio.core.train import trainer
from sslstudio.core.train.deadline import Deadline, parse_duration
from sslstudio.core.train.plan import lr_schedule, make_plan, position, revise
from sslstudio.core.train.runs import read_metrics
from sslstudio.core.train.selection import recommendation
from sslstudio.core.train.step import is_out_of_memory
from sslstudio.core.train.trainer import train
from sslstudio.errors import ConfigError
from tests.shapes import tiny_config


def _plan(cfg, n=100):
    return make_plan(cfg, n)


def test_a_budget_revision_relays_the_schedule_so_it_still_ends_on_its_final_value(tmp_path):
    cfg = tiny_config(tmp_path, epochs=10)  # 100 images, batch 8: 12 steps/epoch, 120 steps
    plan = _plan(cfg)
    base = lr_schedule(plan, cfg)
    short = revise(plan, 30, "time budget", total_steps=60)
    sched = lr_schedule(short, cfg)
    assert len(sched) == 60 and short.total_steps == 60
    np.testing.assert_allclose(sched[:30], base[:30])  # the past is unchanged
    assert sched[-1] == pytest.approx(base[-1])  # ... and the cosine still ends
    assert np.all(np.diff(sched[30:]) <= 1e-12)  # still decaying, now faster
    longer = lr_schedule(revise(plan, 30, "time budget", total_steps=200), cfg)
    assert len(longer) == 200 and longer[-1] == pytest.approx(base[-1])


def test_a_smaller_batch_rescales_the_rate_keeps_the_images_to_see_and_starts_a_fresh_epoch(
    tmp_path,
):
    cfg = tiny_config(tmp_path, epochs=10)
    plan = _plan(cfg)  # batch 8, 12 steps/epoch
    half = revise(plan, 17, "out of memory at batch 8", batch_size=4)
    assert half.batch_size == 4 and half.steps_per_epoch == 25
    assert half.total_steps == 17 + (120 - 17) * 2
    assert half.peak_lr == pytest.approx(plan.peak_lr / 2)
    sched, base = lr_schedule(half, cfg), lr_schedule(plan, cfg)
    assert sched[17] == pytest.approx(base[17] / 2, rel=0.05)
    assert position(plan, 17) == (1, 17)  # the old plan: epoch 1, batch 5 of it
    assert position(half, 17) == (2, 50)  # the new batch size starts epoch 2 from its first batch
    assert position(half, 18) == (2, 51)


def test_deadline_shrinks_a_plan_that_would_overrun_and_grows_an_early_idle_one(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(deadline_mod.time, "perf_counter", lambda: now[0])
    clock = Deadline(budget_s=100.0)
    for s in range(1, 30):  # 1 s a step
        now[0] += 1.0
        clock.step_done(s)
    clock.note("save", 2.0)
    # 29 s spent, 71 left minus the ending (1.5 x 2 s + 1 s): 67 more steps fit, not 171
    assert clock.revised_total(29, total=200) == 29 + 67
    assert clock.revised_total(30, total=200) is None  # one revision per GAP steps
    idle = Deadline(budget_s=1000.0)
    for s in range(1, 30):
        now[0] += 1.0
        idle.step_done(s)
    assert idle.revised_total(29, total=100) > 900  # a plan that would leave 90 % idle grows
    assert Deadline(budget_s=0).revised_total(29, 100) is None


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("10m", 600),
        ("1.5h", 5400),
        ("1h30m", 5400),
        ("10 min", 600),
        ("25", 1500),
        ("overnight", 36000),
    ],
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "ten minutes", "5x", "m"])
def test_bad_durations_say_what_is_accepted(bad):
    with pytest.raises(ValueError, match="10m"):
        parse_duration(bad)


def _oom_above(limit, monkeypatch):
    real = trainer.optimise
    seen = []

    def fake(method, opt, scaler, views, *a):
        seen.append(views[0].shape[0])
        if views[0].shape[0] > limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(method, opt, scaler, views, *a)

    monkeypatch.setattr(trainer, "optimise", fake)
    return seen


def test_out_of_memory_backs_off_to_a_batch_that_fits_and_records_it(
    tiny_folder, tmp_path, monkeypatch
):
    seen = _oom_above(2, monkeypatch)
    cfg = tiny_config(tiny_folder, tmp_path / "run", epochs=1)  # 24 images, batch 8: 3 steps
    events = list(train(cfg))
    revised = [e for e in events if isinstance(e, PlanRevised)]
    assert [r.batch_size for r in revised] == [4, 2]
    assert all("out of memory" in r.reason for r in revised)
    assert revised[-1].total_steps == 3 * 4  # the same number of images, at a quarter of the batch
    assert isinstance(events[-1], RunFinished)
    steps = [e for e in events if isinstance(e, StepLogged)]
    assert [e.step for e in steps] == list(range(12)) and seen[:3] == [8, 4, 2]
    assert steps[0].lr == pytest.approx(revised[-1].lr_schedule[0])
    rows = read_metrics(tmp_path / "run")
    assert [r["batch_size"] for r in rows if r["kind"] == "revision"] == [4, 2]
    meta = ckpt.read_meta(tmp_path / "run" / "checkpoints" / "final")
    assert meta["plan"]["batch_size"] == 2 and len(meta["plan"]["revisions"]) == 2


def test_out_of_memory_at_the_smallest_batch_is_a_clear_error(tiny_folder, tmp_path, monkeypatch):
    _oom_above(0, monkeypatch)
    events = []
    with pytest.raises(ConfigError, match="even at batch size 2"):
        events.extend(train(tiny_config(tiny_folder, tmp_path / "run", epochs=1)))
    assert isinstance(events[-1], RunFailed)


def test_other_runtime_errors_are_never_taken_for_out_of_memory(tiny_folder, tmp_path, monkeypatch):
    assert is_out_of_memory(torch.OutOfMemoryError("x"))
    assert not is_out_of_memory(RuntimeError("CUDA error: out of memory? no: device-side assert"))

    def broken(*a):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    monkeypatch.setattr(trainer, "optimise", broken)
    with pytest.raises(RuntimeError, match="shapes"):
        list(train(tiny_config(tiny_folder, tmp_path / "run", epochs=1)))


def test_a_resumed_run_after_a_revision_equals_the_straight_one(tiny_folder, tmp_path, monkeypatch):
    _oom_above(4, monkeypatch)
    cfg = tiny_config(tiny_folder, tmp_path / "a", checkpoint_every=3, deterministic=True)
    straight = [e for e in train(cfg) if isinstance(e, StepLogged)]
    import threading

    stop = threading.Event()
    first = []
    for e in train(dataclasses.replace(cfg, out=str(tmp_path / "b")), stop=stop):
        first.append(e)
        if isinstance(e, StepLogged) and e.step == 4:
            stop.set()
    rest = [
        e
        for e in train(
            dataclasses.replace(cfg, out=str(tmp_path / "b")), resume_from=tmp_path / "b"
        )
        if isinstance(e, StepLogged)
    ]
    resumed = [e for e in first if isinstance(e, StepLogged)] + rest
    assert [e.step for e in resumed] == [e.step for e in straight]
    assert [e.loss for e in resumed] == pytest.approx([e.loss for e in straight], abs=1e-5)
    assert [e.lr for e in resumed] == pytest.approx([e.lr for e in straight])


def test_time_budget_revisions_end_the_run_early_and_are_logged(tiny_folder, tmp_path, monkeypatch):
    monkeypatch.setattr(
        trainer.Deadline,
        "revised_total",
        lambda self, step, total, cost=None: 5 if step == 2 else None,
    )
    cfg = tiny_config(tiny_folder, tmp_path / "run", epochs=4, time_budget_s=60.0)
    events = list(train(cfg))
    rev = [e for e in events if isinstance(e, PlanRevised)]
    assert len(rev) == 1 and rev[0].reason == "time budget" and rev[0].total_steps == 5
    steps = [e for e in events if isinstance(e, StepLogged)]
    assert [e.step for e in steps] == list(range(5))
    assert steps[-1].lr == pytest.approx(rev[0].lr_schedule[-1])
    assert ckpt.read_meta(tmp_path / "run" / "checkpoints" / "final")["train_seconds"] > 0


def test_the_best_checkpoint_by_the_quality_signal_is_kept_and_recommended(
    tiny_folder, tmp_path, monkeypatch
):
    scores = iter([0.5, 0.9, 0.6, 0.4])  # step 0 (random init), 2, 4, final (6)
    real = trainer.run_probe

    def fake(*a, **k):
        ev = real(*a, **k)
        return dataclasses.replace(ev, shift_top1=next(scores))

    monkeypatch.setattr(trainer, "run_probe", fake)
    events = list(train(tiny_config(tiny_folder, tmp_path / "run")))
    monitors = [e for e in events if isinstance(e, MonitorLogged)]
    assert all(m.view_top1 is not None and 0 <= m.view_top1 <= 1 for m in monitors)
    done = events[-1]
    assert isinstance(done, RunFinished)
    assert done.recommended.endswith("best") and "step 2" in done.advice and "0.500" in done.advice
    best = ckpt.read_meta(tmp_path / "run" / "checkpoints" / "best")
    assert best["step"] == 2 and best["selection"]["shift_ref"] == 0.5
    finished = [r for r in read_metrics(tmp_path / "run") if r["kind"] == "finished"][0]
    assert finished["recommended"] == done.recommended
    assert json.dumps(finished)  # plain JSON


def test_recommendation_says_when_training_did_not_beat_random_init():
    sel = {
        "signal": "view_top1",
        "reference": {"view_top1": 0.8},
        "best_score": 0.6,
        "best_step": 10,
        "n": 512,
    }
    path, why = recommendation(sel, 0.5, "final", "best")
    assert path == "best" and "not better than random init" in why and "0.600 vs 0.800" in why
    # a best within the probe's noise of the end (2 SE on 512 images ~ 0.044) is not worth an early
    # step
    near = {**sel, "reference": {"view_top1": 0.3}, "best_score": 0.52}
    path, why = recommendation(near, 0.5, "final", "best")
    assert path == "final" and "within the probe's noise of step 10" in why
    assert recommendation({}, None, "final", "")[0] == "final"


def test_view_retrieval_scores_collapse_low_and_a_random_network_higher(tiny_folder):
    from sslstudio.config import RunConfig
    from sslstudio.core.data.cache import build_cache
    from sslstudio.core.data.scan import scan_folder
    from sslstudio.core.methods import build_method
    from sslstudio.core.train.monitor import view_retrieval
    from sslstudio.core.transforms.presets import preset

    data = build_cache(scan_folder(tiny_folder), 24, tiny_folder.parent / "cache")
    cfg = RunConfig(data_root=str(tiny_folder), backbone="tiny_cnn", image_size=16)
    rows = np.arange(len(data))
    torch.manual_seed(0)
    method = build_method(cfg)
    healthy = view_retrieval(method, data, rows, preset("natural", 16), 16, "cpu")
    again = view_retrieval(method, data, rows, preset("natural", 16), 16, "cpu")
    assert healthy == again  # fixed views: the same network scores the same
    method.embed = lambda x: torch.ones(x.shape[0], 8)  # complete collapse
    collapsed = view_retrieval(method, data, rows, preset("natural", 16), 16, "cpu")
    assert collapsed < 1.5 / len(rows) < healthy
