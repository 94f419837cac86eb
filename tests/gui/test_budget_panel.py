"""The Method page's "Time available": a plan for the time the user has, shown on every page,
changeable before Start, saved with the run; "No limit" takes the deadline away again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sslstudio.core.events import RunFinished
from sslstudio.core.train import budget


@pytest.fixture
def quick_pace(monkeypatch):
    monkeypatch.setattr(budget, "measure_seconds_per_step", lambda cfg, steps=3: 0.5)


def _choose(panel, seconds):
    panel.choice.setCurrentIndex(panel.choice.findData(seconds))


def test_planning_for_ten_minutes_fills_the_forms_and_sets_a_deadline(
    ready_window, qtbot, quick_pace
):
    w, page = ready_window, ready_window.method_page
    panel = page.budget
    assert w.config_model.config.time_budget_s == 600  # time first: the default time
    _choose(panel, 600)
    qtbot.waitUntil(lambda: panel.button.isEnabled(), timeout=10_000)
    with qtbot.waitSignal(page.budgetPlanned, timeout=30_000) as signal:
        panel.button.click()
    plan = signal.args[0]
    cfg = w.config_model.config
    assert 590 < cfg.time_budget_s <= 600
    assert (cfg.method, cfg.image_size, cfg.max_steps) == (
        "simclr",
        plan.config.image_size,
        plan.steps,
    )
    assert cfg.augment.crop_scale_min == pytest.approx(
        0.25
    )  # the Augment page shows the plan's crops too
    assert cfg.data_root == w.data_page.folder
    assert "Plan for 10 min" in panel.summary.text() and not panel.summary.isHidden()
    page.run_form.control("image_size").setValue(48)  # any part can still be changed
    assert w.config_model.config.image_size == 48 and w.config_model.config.time_budget_s > 0
    _choose(panel, 0)
    assert w.config_model.config.time_budget_s == 0 and panel.summary.isHidden()


def test_custom_minutes_and_the_plan_saved_with_the_run(
    ready_window, qtbot, quick_pace, monkeypatch
):
    w, panel = ready_window, ready_window.method_page.budget
    _choose(panel, -1)
    assert not panel.minutes.isHidden()
    panel.minutes.setValue(2)
    assert panel.seconds() == 120
    with qtbot.waitSignal(w.method_page.budgetPlanned, timeout=30_000):
        panel.button.click()
    w.method_page.run_form.control("max_steps").setValue(2)  # keep the test short
    w.method_page.run_form.control("monitor_every").setValue(0)
    events = []
    w.controller.event.connect(events.append)
    w.start_run()
    qtbot.waitUntil(lambda: any(isinstance(e, RunFinished) for e in events), timeout=120_000)
    run = Path(next(e for e in events if isinstance(e, RunFinished)).path).parent.parent
    saved = json.loads((run / "budget.json").read_text())
    assert saved["budget_s"] == 120 and saved["choices"]
    assert json.loads((run / "config.json").read_text())["time_budget_s"] > 0
