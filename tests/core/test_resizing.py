"""Progressive resizing: the size schedule, its cost model, the deadline that prices the steps
to come, and a run that trains small first, ends at full size and resumes exactly."""

import dataclasses
import threading

import numpy as np
import pytest
import torch

from sslstudio.config import validate
from sslstudio.core import checkpoints as ckpt
from sslstudio.core import deadline as deadline_mod
from sslstudio.core import trainer as trainer_mod
from sslstudio.core.deadline import Deadline, _last_fitting
from sslstudio.core.errors import ConfigError
from sslstudio.core.events import MonitorLogged, PlanRevised, RunStopped, StepLogged
from sslstudio.core.plan import make_plan, revise
from sslstudio.core.resizing import (
    FIXED_COST,
    FULL,
    HOLD,
    cost_of_rest,
    mean_cost,
    relative_cost,
    size_at,
    size_schedule,
    steps_left,
)
from sslstudio.core.trainer import train
from tests.shapes import tiny_config


def test_size_holds_then_grows_in_quanta_then_stays_full():
    p = np.linspace(0.0, 1.0, 2001)
    sizes = size_at(p, 16, 32)
    assert (sizes[p < HOLD] == 16).all() and (sizes[p >= FULL] == 32).all()
    assert (np.diff(sizes) >= 0).all() and set(np.unique(sizes)) == {16, 20, 24, 28, 32}
    big = size_at(p, 128, 224)  # 16 px quanta above 64 px: few shapes for a GPU to compile
    assert set(np.unique(big)) <= set(range(128, 225, 16)) and big[-1] == 224


def test_schedule_is_full_size_when_off_and_follows_revisions(tmp_path):
    cfg = tiny_config(tmp_path, image_size=32)
    plan = make_plan(cfg, 1000, 1)
    assert (size_schedule(plan, cfg) == 32).all() and len(size_schedule(plan, cfg)) == plan["total_steps"]
    cfg = dataclasses.replace(cfg, progressive_from=16, epochs=10)
    plan = make_plan(cfg, 1000, 1)  # 125 steps
    before = size_schedule(plan, cfg)
    shorter = revise(plan, 30, "time budget", total_steps=80)
    after = size_schedule(shorter, cfg)
    assert len(after) == 80 and (after[:30] == before[:30]).all()  # the past is kept
    assert after[-1] == 32 and (np.diff(after) >= 0).all()  # a cut run still ends at full size


def test_cost_model_and_what_a_run_costs(tmp_path):
    assert relative_cost(32, 32) == pytest.approx(1.0) and relative_cost(16, 32) == pytest.approx(FIXED_COST + (1 - FIXED_COST) / 4)
    assert mean_cost(0, 32) == 1.0 and FIXED_COST < mean_cost(16, 32) < 0.8
    cfg = dataclasses.replace(tiny_config(tmp_path, image_size=32), progressive_from=16, epochs=10)
    plan = make_plan(cfg, 1000, 1)
    assert cost_of_rest(plan, dataclasses.replace(cfg, progressive_from=0)) is None
    cost = cost_of_rest(plan, cfg)
    sizes = size_schedule(plan, cfg)
    assert cost(0, plan["total_steps"]) == pytest.approx(relative_cost(sizes, 32).sum())
    assert cost(40, 100) < cost(40, 120) < 80  # more steps cost more, small ones less than one each
    assert steps_left(sizes, 0, len(sizes), 32) > len(sizes) - 1  # later steps cost more than the first
    assert steps_left(np.full(10, 32), 3, 10, 32) == 6


@pytest.mark.parametrize("units", [0.0, 0.5, 1.0, 7.3, 100.0, 1234.5])
def test_last_fitting_end_matches_brute_force(units):
    def cost(at, end):  # steps get dearer, as in a progressive run
        return float(sum(0.5 + 0.01 * k for k in range(at, end)))

    brute = max([t for t in range(11, 5000) if cost(10, t) <= units], default=11)
    assert _last_fitting(10, units, cost) == brute


def test_deadline_prices_the_steps_to_come_with_their_cost(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(deadline_mod.time, "perf_counter", lambda: now[0])
    clock = Deadline(budget_s=200.0)
    for s in range(1, 41):  # half-cost steps, 0.5 s each: 1 s per full-size step
        now[0] += 0.5
        clock.step_done(s, cost=0.5)
    assert clock.pace() == pytest.approx(1.0)
    # 20 s spent, 180 - 1 s left: at one unit a step 179 more steps fit, at half a unit 358
    assert clock.revised_total(40, 1000, lambda a, end: float(end - a)) == 40 + 179
    again = Deadline(budget_s=200.0)
    for s in range(1, 41):
        now[0] += 0.5
        again.step_done(s, cost=0.5)
    assert again.revised_total(40, 1000, lambda a, end: 0.5 * (end - a)) == 40 + 358


def test_progressive_from_must_be_below_image_size_and_needs_a_cnn(tiny_folder, tmp_path):
    with pytest.raises(ConfigError, match="progressive_from"):
        validate(tiny_config(tiny_folder, image_size=16, progressive_from=16))
    with pytest.raises(ConfigError, match="progressive_from"):
        validate(tiny_config(tiny_folder, image_size=32, progressive_from=4))
    vit = tiny_config(tiny_folder, tmp_path / "v", method="mae", backbone="vit_tiny", image_size=32, progressive_from=16)
    with pytest.raises(ConfigError, match="convolutional backbone"):
        next(train(vit))
    assert not (tmp_path / "v").exists()  # refused before a run folder exists


def _sizes_trained(monkeypatch):
    seen = []
    real = trainer_mod.optimise

    def spy(method, opt, scaler, views, *rest):
        seen.append(views[0].shape[-1])
        return real(method, opt, scaler, views, *rest)

    monkeypatch.setattr(trainer_mod, "optimise", spy)
    return seen


def test_a_progressive_run_trains_small_first_probes_and_ends_at_full_size(tiny_folder, tmp_path, monkeypatch):
    seen = _sizes_trained(monkeypatch)
    cfg = tiny_config(tiny_folder, tmp_path / "r", image_size=24, progressive_from=12, epochs=10, checkpoint_every=100,
                      monitor_every=10)
    events = list(train(cfg))
    assert len(seen) == 30 and seen[0] == 12 and seen[-1] == 24 and seen == sorted(seen)
    assert set(seen) == {12, 16, 20, 24}
    steps = [e for e in events if isinstance(e, StepLogged)]
    assert steps[-1].eta_s == 0 and steps[0].eta_s > 0
    assert any(isinstance(e, MonitorLogged) for e in events)  # probes embed at the full size


def test_progressive_run_stopped_and_resumed_equals_uninterrupted(tiny_folder, tmp_path, monkeypatch):
    over = {"image_size": 24, "progressive_from": 12, "epochs": 4, "checkpoint_every": 3}
    seen = _sizes_trained(monkeypatch)
    straight = [e.loss for e in train(tiny_config(tiny_folder, tmp_path / "a", **over)) if isinstance(e, StepLogged)]
    sizes_straight = list(seen)
    seen.clear()
    stop = threading.Event()
    first = []
    for ev in train(tiny_config(tiny_folder, tmp_path / "b", **over), stop=stop):
        first.append(ev)
        if isinstance(ev, StepLogged) and ev.step == 5:
            stop.set()
    assert isinstance(first[-1], RunStopped)
    rest = list(train(tiny_config(tiny_folder, tmp_path / "b", **over), resume_from=tmp_path / "b"))
    assert seen == sizes_straight  # each step at the same size
    losses = [e.loss for e in first + rest if isinstance(e, StepLogged)]
    assert losses == straight
    wa = ckpt.load_checkpoint(tmp_path / "a" / "checkpoints" / "final")[0]
    wb = ckpt.load_checkpoint(tmp_path / "b" / "checkpoints" / "final")[0]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_a_time_budget_revision_keeps_the_run_ending_at_full_size(tiny_folder, tmp_path, monkeypatch):
    seen = _sizes_trained(monkeypatch)
    monkeypatch.setattr(trainer_mod.Deadline, "revised_total",
                        lambda self, step, total, cost=None: 20 if step == 6 and cost is not None else None)
    cfg = tiny_config(tiny_folder, tmp_path / "t", image_size=24, progressive_from=12, epochs=20, checkpoint_every=100)
    events = list(train(cfg))
    assert any(isinstance(e, PlanRevised) and e.total_steps == 20 for e in events)
    assert len(seen) == 20 and seen[-1] == 24 and seen == sorted(seen)
