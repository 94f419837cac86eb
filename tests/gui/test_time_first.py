"""Time first: with neither epochs nor a time chosen, a run is planned for the default time, its
finish shown as a clock time before Start; 'No limit' and the expert fields wait under Advanced."""

from __future__ import annotations

import argparse
from datetime import datetime

from sslstudio.cli.train import _no_length_given
from sslstudio.config import DEFAULT_TIME_S
from sslstudio.gui.pages.method.budget_panel import NO_LIMIT, finish_text


def test_finish_is_a_clock_time() -> None:
    now = datetime(2026, 12, 7, 14, 22)
    assert "about <b>14:32</b> if started now (10 min)" in finish_text(600, now)
    assert "<b>00:22</b> tomorrow" in finish_text(36000, now)
    assert "(10 h)" in finish_text(36000, now)
    assert finish_text(0, now).startswith("No time limit")


def test_the_window_starts_on_the_default_time(window) -> None:
    page = window.method_page
    assert DEFAULT_TIME_S == 600
    assert window.config_model.config.time_budget_s == DEFAULT_TIME_S
    assert page.budget.choice.currentText() == "10 minutes (recommended)"
    expected = datetime.fromtimestamp(datetime.now().timestamp() + DEFAULT_TIME_S)
    text = page.budget.finish.text()
    assert "Planned finish" in text and f"{expected:%H:}" in text
    assert not page.budget.finish.isHidden()


def test_advanced_holds_the_optimiser_method_options_and_no_limit(window) -> None:
    page = window.method_page
    view = page.budget.choice.view()
    assert not page.advanced_button.isChecked()
    assert page.optim_form.isHidden() or not page.optim_form.isVisibleTo(page)
    assert not page.options_scroll.isVisibleTo(page) and view.isRowHidden(NO_LIMIT)
    page.advanced_button.click()
    assert page.optim_form.isVisibleTo(page) and page.options_scroll.isVisibleTo(page)
    assert not view.isRowHidden(NO_LIMIT) and page.advanced_button.text().startswith("Hide")
    page.budget.choice.setCurrentIndex(NO_LIMIT)
    assert window.config_model.config.time_budget_s == 0
    assert page.budget.finish.text().startswith("No time limit")


def test_setting_epochs_by_hand_means_no_time_limit(window) -> None:
    page = window.method_page
    page.run_form.control("epochs").setValue(3)
    cfg = window.config_model.config
    assert (cfg.epochs, cfg.time_budget_s) == (3, 0)
    assert page.budget.choice.currentIndex() == NO_LIMIT


def test_the_command_line_plans_the_default_time_only_when_no_length_is_given() -> None:
    def args(**given) -> argparse.Namespace:  # noqa: ANN003
        base = {"epochs": None, "max_steps": None, "budget": None, "config": None, "resume": None}
        return argparse.Namespace(**{**base, **given})

    assert _no_length_given(args())
    for given in ({"epochs": 3}, {"max_steps": 9}, {"budget": "1h"}, {"config": "c.json"}):
        assert not _no_length_given(args(**given))


def test_the_estimate_times_a_small_batch_and_scales_it() -> None:
    from sslstudio.config import RunConfig
    from sslstudio.gui.pages.method.estimate_panel import PROBE_BATCH, probe_config, scaled
    from sslstudio.gui.run.estimate import Estimate

    probe, batch = probe_config(RunConfig(batch_size=256), 124)
    assert (probe.batch_size, batch) == (PROBE_BATCH, 124)  # the run's batch: the folder's size
    timed = Estimate(2.0, 3, PROBE_BATCH, "cpu (1 thread)", 124, 2)
    est = scaled(timed, batch)
    assert est.batch_size == 124 and est.steps_per_epoch == 1
    assert est.seconds_per_step == 2.0 * 124 / PROBE_BATCH
    assert scaled(timed, PROBE_BATCH) is timed  # already timed at the run's batch
