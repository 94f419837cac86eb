"""Progressive resizing: the size schedule, its cost model, the deadline that prices the steps
to come, and a run that trains small first, ends at full size and resumes exactly."""

import dataclasses
import threading

import numpy as np
import pytest
import torch

from sslstudio.config import validate
from sslstudio.core.events import MonitorLogged, PlanRevised, RunStopped, StepLogged
from sslstudio.core.train import checkpoints as ckpt
from sslstudio.core.train import deadline as deadline_mod
from sslstudio.core.train import trainer as trainer_mod
from sslstudio.core.train.deadline import Deadline, _last_fitting
from sslstudio.core.train.plan import make_plan, revise
from sslstudio.core.train.resizing import (
    FIXED_COST,
    FULL,
    HOLD,
    mean_cost,
    relative_cost,
    seconds_between,
    size_at,
    size_schedule,
    sizes_of_rest,
    steps_left,
)
from sslstudio.core.train.trainer import train
from sslstudio.errors import ConfigError
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
    assert (size_schedule(plan, cfg) == 32).all() and len(
        size_schedule(plan, cfg)
    ) == plan.total_steps
    cfg = dataclasses.replace(cfg, progressive_from=16, epochs=10)
    plan = make_plan(cfg, 1000, 1)  # 125 steps
    before = size_schedule(plan, cfg)
    shorter = revise(plan, 30, "time budget", total_steps=80)
    after = size_schedule(shorter, cfg)
    assert len(after) == 80 and (after[:30] == before[:30]).all()  # the past is kept
    assert after[-1] == 32 and (np.diff(after) >= 0).all()  # a cut run still ends at full size


def test_cost_model_measured_costs_and_what_a_run_costs(tmp_path):
    assert relative_cost(32, 32) == pytest.approx(1.0) and relative_cost(16, 32) == pytest.approx(
        FIXED_COST + (1 - FIXED_COST) / 4
    )
    assert mean_cost(0, 32) == 1.0 and FIXED_COST < mean_cost(16, 32) < 0.8
    timed = {16: 0.5, 32: 1.0}  # linear in area between timed sizes, exact at them
    assert seconds_between(16, timed) == 0.5 and seconds_between(32, timed) == 1.0
    assert seconds_between(24, timed) == pytest.approx(
        0.5 + 0.5 * (24**2 - 16**2) / (32**2 - 16**2)
    )
    assert (
        seconds_between(8, timed) > 0 and seconds_between(48, timed) > 1.0
    )  # beyond: along the line
    assert seconds_between(64, {32: 1.0}) == pytest.approx(
        1.0 / relative_cost(32, 64)
    )  # one: the model
    sizes = size_at(np.linspace(0.0, 1.0, 1001), 16, 32)
    want = np.mean([seconds_between(int(z), timed) for z in sizes])
    assert mean_cost(16, 32, timed) == pytest.approx(want) and mean_cost(
        16, 32, timed
    ) != mean_cost(16, 32)
    cfg = dataclasses.replace(tiny_config(tmp_path, image_size=32), progressive_from=16, epochs=10)
    plan = make_plan(cfg, 1000, 1)
    assert sizes_of_rest(plan, dataclasses.replace(cfg, progressive_from=0)) is None
    rest = sizes_of_rest(plan, cfg)
    assert (rest(0, plan.total_steps) == size_schedule(plan, cfg)).all()
    assert (
        len(rest(40, 100)) == 60
        and rest(40, 100)[-1] == 32
        and rest(40, 100)[0] == size_schedule(plan, cfg)[40]
    )
    full = size_schedule(plan, cfg)
    assert (
        steps_left(full, 0, len(full), 32) > len(full) - 1
    )  # later steps cost more than the first
    assert steps_left(np.full(10, 32), 3, 10, 32) == 6


@pytest.mark.parametrize("units", [0.0, 0.5, 1.0, 7.3, 100.0, 1234.5])
def test_last_fitting_end_matches_brute_force(units):
    def cost(at, end):  # steps get dearer, as in a progressive run
        return float(sum(0.5 + 0.01 * k for k in range(at, end)))

    brute = max([t for t in range(11, 5000) if cost(10, t) <= units], default=11)
    assert _last_fitting(10, units, cost) == brute


def _ticking(monkeypatch):
    now = [0.0]
    monkeypatch.setattr(deadline_mod.time, "perf_counter", lambda: now[0])
    return now


def test_deadline_prices_the_steps_to_come_by_size(monkeypatch):
    now = _ticking(monkeypatch)
    clock = Deadline(budget_s=200.0, final_size=32, measured={16: 0.25, 32: 1.0})
    for s in range(
        1, 44
    ):  # 16 px steps of 0.5 s: twice what the planner timed (another program runs)
        now[0] += 0.5
        clock.step_done(s, 16)
    assert clock.pace() == pytest.approx(0.5) and clock.seconds_at(16) == pytest.approx(0.5)
    assert clock.seconds_at(32) == pytest.approx(
        2.0
    )  # not seen yet: the timed ratio, scaled to the pace
    left = 200.0 - 21.5 - 1.0
    assert clock.revised_total(43, 1000, lambda a, end: np.full(end - a, 16)) == 43 + int(
        left / 0.5
    )
    again = Deadline(budget_s=200.0, final_size=32, measured={16: 0.25, 32: 1.0})
    for s in range(1, 44):
        now[0] += 0.5
        again.step_done(s, 16)
    assert again.revised_total(43, 1000, lambda a, end: np.full(end - a, 32)) == 43 + int(
        left / 2.0
    )
    for s in range(44, 50):  # 32 px steps seen: their own time wins over the estimate
        now[0] += 1.5
        again.step_done(s, 32)
    assert again.seconds_at(32) == pytest.approx(1.5)
    model = Deadline(budget_s=200.0, final_size=32)  # nothing timed: the cost model's ratio
    for s in range(1, 20):
        now[0] += 0.5
        model.step_done(s, 16)
    assert model.seconds_at(32) == pytest.approx(0.5 / relative_cost(16, 32))


def test_probes_and_saves_are_spread_over_all_steps_not_charged_to_one_size(monkeypatch):
    now = _ticking(monkeypatch)
    clock = Deadline(budget_s=100.0, final_size=32)
    for s in range(1, 30):
        now[0] += 1.0
        if s % 10 == 0:  # a 3 s probe before every tenth step
            now[0] += 3.0
            clock.note("probe", 3.0)
        clock.step_done(s, 16 if s < 24 else 32)
    assert clock.seconds_at(16) == pytest.approx(1.0) and clock.seconds_at(32) == pytest.approx(1.0)
    assert clock.pace() == pytest.approx((26 + 6) / 26)  # the probes still count in the pace


def test_progressive_from_must_be_below_image_size_and_needs_a_cnn(tiny_folder, tmp_path):
    with pytest.raises(ConfigError, match="progressive_from"):
        validate(tiny_config(tiny_folder, image_size=16, progressive_from=16))
    with pytest.raises(ConfigError, match="progressive_from"):
        validate(tiny_config(tiny_folder, image_size=32, progressive_from=4))
    vit = tiny_config(
        tiny_folder,
        tmp_path / "v",
        method="mae",
        backbone="vit_tiny",
        image_size=32,
        progressive_from=16,
    )
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


def test_a_progressive_run_trains_small_first_probes_and_ends_at_full_size(
    tiny_folder, tmp_path, monkeypatch
):
    seen = _sizes_trained(monkeypatch)
    cfg = tiny_config(
        tiny_folder,
        tmp_path / "r",
        image_size=24,
        progressive_from=12,
        epochs=10,
        checkpoint_every=100,
        monitor_every=10,
    )
    events = list(train(cfg))
    assert len(seen) == 30 and seen[0] == 12 and seen[-1] == 24 and seen == sorted(seen)
    assert set(seen) == {12, 16, 20, 24}
    steps = [e for e in events if isinstance(e, StepLogged)]
    assert steps[-1].eta_s == 0 and steps[0].eta_s > 0
    assert any(isinstance(e, MonitorLogged) for e in events)  # probes embed at the full size


def test_progressive_run_stopped_and_resumed_equals_uninterrupted(
    tiny_folder, tmp_path, monkeypatch
):
    over = {"image_size": 24, "progressive_from": 12, "epochs": 4, "checkpoint_every": 3}
    seen = _sizes_trained(monkeypatch)
    straight = [
        e.loss
        for e in train(tiny_config(tiny_folder, tmp_path / "a", **over))
        if isinstance(e, StepLogged)
    ]
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


def test_a_time_budget_revision_keeps_the_run_ending_at_full_size(
    tiny_folder, tmp_path, monkeypatch
):
    seen = _sizes_trained(monkeypatch)
    monkeypatch.setattr(
        trainer_mod.Deadline,
        "revised_total",
        lambda self, step, total, sizes_of=None: 20 if step == 6 and sizes_of is not None else None,
    )
    cfg = tiny_config(
        tiny_folder,
        tmp_path / "t",
        image_size=24,
        progressive_from=12,
        epochs=20,
        checkpoint_every=100,
    )
    events = list(train(cfg))
    assert any(isinstance(e, PlanRevised) and e.total_steps == 20 for e in events)
    assert len(seen) == 20 and seen[-1] == 24 and seen == sorted(seen)


def test_the_pace_follows_a_machine_that_speeds_up_and_a_late_idle_plan_grows(monkeypatch):
    now = _ticking(monkeypatch)
    clock = Deadline(budget_s=2000.0)
    for s in range(1, 601):  # 1 s a step, then the machine gets faster: 0.5 s
        now[0] += 1.0 if s <= 300 else 0.5
        clock.step_done(s, 32)
    assert clock.pace() == pytest.approx(0.5, rel=0.05)  # not the run's mean, 0.75
    # 450 s spent; past the half of a 1000-step plan, 1549 s left buy ~3000 more steps: grow
    assert clock.revised_total(600, 1000) == pytest.approx(600 + 1549 / 0.5, rel=0.05)
    late = Deadline(budget_s=2000.0)
    for s in range(1, 601):
        now[0] += 0.5
        late.step_done(s, 32)
    assert late.revised_total(600, 700) is None  # the last fifth of the run is left as laid
