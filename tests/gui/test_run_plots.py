"""One plot code for a run, live and afterwards: the Train page fed event by event and the Runs
page replaying the run's log (written and read by the one codec) draw the same curves."""

from __future__ import annotations

import json
import math

from sslstudio.core.events import (
    MonitorLogged,
    RunFinished,
    RunStarted,
    StepLogged,
    encode,
)
from sslstudio.core.train.monitor import COLLAPSE_STD, RANK_SHARE
from sslstudio.core.train.runs import read_events
from sslstudio.gui.pages.runs.run_details import RunDetailsView
from sslstudio.gui.run.history import load_details
from sslstudio.gui.widgets import run_plots
from sslstudio.gui.widgets.run_plots import RunPlots
from tests.gui.test_runs_page import make_run


def events(run: str, steps: int = 30, start: int = 0) -> list:
    lr = tuple(0.1 * math.cos(i / steps) for i in range(steps))
    out: list = [RunStarted(run, "cpu", steps, 10, 8, start, 40, lr)]
    for s in range(start, steps):
        out.append(StepLogged(s, s // 10, 8 * s, 3.0 - 0.05 * s, lr[s], 90.0 + s, 0.2, 1.0))
        if s % 10 == 0:
            out.append(MonitorLogged(s, 0.5 + s / 100, 9.0 + s, 64, knn_top1=0.4, view_top1=0.3))
    out.append(RunFinished(steps - 1, f"{run}/checkpoints/final", 1.5))
    return out


def test_the_runs_page_replays_a_log_into_the_curves_the_train_page_drew(window, qtbot) -> None:  # noqa: ANN001
    run = make_run("replayed", ending=None)
    evs = events(str(run))
    (run / "metrics.jsonl").write_text("".join(json.dumps(encode(ev)) + "\n" for ev in evs))
    train = window.train_page
    for ev in evs:
        train.on_event(ev)  # as the controller forwards them
    train.redraw_now()
    view = RunDetailsView()
    qtbot.addWidget(view)
    view.show_runs([load_details(run)])
    live, replayed = train.run_plots.curve_data(), view.run_plots.curve_data()
    assert live == replayed
    assert len(live["raw"][0]) == 30 and len(live["std"][0]) == 3 and len(live["plan"][0]) == 30
    assert view.run_plots.loss_plot.placeholder.isHidden()


def test_a_resumed_log_replays_without_losing_the_steps_before_the_resume(qtbot) -> None:  # noqa: ANN001
    run = make_run("resumed", ending=None)
    first = events(str(run), steps=20)[:-1]
    before = [ev for ev in first if not isinstance(ev, StepLogged) or ev.step < 12]
    before = [ev for ev in before if not isinstance(ev, MonitorLogged) or ev.step < 12]
    after = events(str(run), steps=20, start=12)
    log = before + after
    (run / "metrics.jsonl").write_text("".join(json.dumps(encode(ev)) + "\n" for ev in log))
    plots = RunPlots()
    qtbot.addWidget(plots)
    plots.replay(read_events(run))
    steps = plots.curve_data()["raw"][0]
    assert steps == [float(s) for s in range(20)]


def test_the_collapse_bands_use_the_monitors_thresholds() -> None:
    assert (run_plots.COLLAPSE_STD, run_plots.RANK_SHARE) == (COLLAPSE_STD, RANK_SHARE)


def test_a_lone_point_gets_a_step_axis_from_its_step_with_whole_steps(qtbot) -> None:  # noqa: ANN001
    plots = RunPlots()
    qtbot.addWidget(plots)
    plots.resize(900, 500)
    plots.show()
    assert not plots.loss_plot.placeholder.isHidden()
    plots.on_event(StepLogged(0, 0, 8, 3.0, 0.1, 90.0, 0.1, 1.0))
    plots.redraw_now()
    lo, hi = plots.loss_plot.getPlotItem().getViewBox().viewRange()[0]
    assert -1 < lo <= 0 and 9 < hi < 12  # not -400..400
    axis = plots.loss_plot.getPlotItem().getAxis("bottom")
    assert all(spacing >= 1 for spacing, _ in axis.tickSpacing(0, 3, 400))
    assert axis.tickStrings([1000.0, 2000.0], 1, 1000) == ["1,000", "2,000"]
