"""The schedules a run will follow, drawn before it starts: learning rate, and the teacher momentum
of methods that have one (BYOL, MoCo, DINO ...: a ``momentum_base``/``momentum_final`` pair).

Long runs are drawn from at most ``PLOT_POINTS`` samples of the same curve, never allocated per
step.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QWidget

from sslstudio.config import RunConfig
from sslstudio.core.train.schedules import WARMUP_SHARE, cosine_schedule, scaled_lr
from sslstudio.gui import theme
from sslstudio.gui.widgets.grid_axis import grid_axes
from sslstudio.gui.widgets.panels import Card, hint

PLOT_POINTS = 4000  # a 10^8-step schedule is drawn from this many points
ASSUMED_IMAGES = 1000
_START, _END = {"base", "start", "initial", "min"}, {"final", "end", "max"}
_SCHEDULED = re.compile(r"(momentum|ema|tau)")


def momentum_fields(config_cls: type) -> tuple[str, str] | None:
    """The (start, end) float fields of a momentum schedule in a method's Config, if it has one.

    Matches names such as ``momentum_base``/``momentum_final``, ``base_momentum``/``final_momentum``
    or ``teacher_momentum_start``/``teacher_momentum_end``: the same stem, one start and one end
    word.
    """
    if not dataclasses.is_dataclass(config_cls):
        return None
    starts: dict[str, str] = {}
    ends: dict[str, str] = {}
    for f in dataclasses.fields(config_cls):
        words = f.name.split("_")
        if not _SCHEDULED.search(f.name) or f.type not in (float, "float"):
            continue
        for i, w in enumerate(words):
            stem = "_".join(words[:i] + words[i + 1 :])
            if w in _START:
                starts[stem] = f.name
            elif w in _END:
                ends[stem] = f.name
    for stem, start in starts.items():
        if stem in ends:
            return start, ends[stem]
    return None


def plan_steps(cfg: RunConfig, num_images: int | None) -> tuple[int, int, int, int]:
    """(images, batch, steps per epoch, total steps) as ``plan.make_plan`` will compute them."""
    n = num_images or ASSUMED_IMAGES
    batch = max(1, min(cfg.batch_size, n))
    spe = max(1, n // batch)
    total = spe * cfg.epochs
    if cfg.max_steps:
        total = min(total, cfg.max_steps)
    return n, batch, spe, total


def _length(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes}-minute" if minutes < 120 else f"{seconds / 3600:.3g}-hour"


def _plot(name: str, color_key: str) -> tuple[pg.PlotWidget, pg.PlotDataItem]:
    w = pg.PlotWidget(axisItems=grid_axes())
    w.setObjectName(name)
    item = w.getPlotItem()
    item.setLabel("bottom", "step")
    item.showGrid(x=True, y=True, alpha=0.2)
    item.hideButtons()
    item.setMenuEnabled(False)
    w.setMinimumHeight(100)
    pen = theme.pen(color_key)
    return w, theme.tag(item.plot([], [], pen=pen), pen)


class ScheduleCard(Card):
    """Learning rate (always) and momentum (when the method has a schedule for it)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Schedules", parent)
        self.schedule_plot, self.schedule_curve = _plot("schedulePlot", "lr")
        self.schedule_plot.getPlotItem().setTitle("Learning rate", size="9pt")
        self.momentum_plot, self.momentum_curve = _plot("momentumPlot", "knn")
        self.momentum_plot.getPlotItem().setTitle("Teacher momentum", size="9pt")
        self.momentum_plot.setVisible(False)
        theme.changes().changed.connect(self._restyle)
        self.add(self.schedule_plot, 3)
        self.add(self.momentum_plot, 2)
        self.caption = hint("")
        self.add(self.caption)

    def _restyle(self, _theme: object = None) -> None:
        theme.restyle_plot(self.schedule_plot)
        theme.restyle_plot(self.momentum_plot)

    def draw(
        self,
        cfg: RunConfig,
        num_images: int | None,
        method_config: Any = None,
        momentum: tuple[str, str] | None = None,
    ) -> None:
        """Plot ``cfg``'s schedules over the folder of ``num_images`` (assumed 1,000 when
        unknown). Under a time limit with no step count planned yet, over minutes: the run sets
        its steps from its measured pace and lays the schedule to end at the deadline."""
        n, batch, spe, total = plan_steps(cfg, num_images)
        peak = scaled_lr(cfg.optim.lr, batch)
        timed = cfg.time_budget_s > 0 and not cfg.max_steps
        if timed:  # the trainer's plan: 5 % warm-up, then cosine to the deadline
            minutes = cfg.time_budget_s / 60
            points = PLOT_POINTS
            warm_points = round(WARMUP_SHARE * points)
            x = np.linspace(0.0, minutes, points)
        else:
            warm = int(round(cfg.optim.warmup_epochs * spe))
            points = min(total, PLOT_POINTS)
            warm_points = round(warm * points / total)
            x = np.arange(points) * (total / points)
        lr = cosine_schedule(peak, peak * cfg.optim.min_lr_ratio, points, warm_points)
        self.schedule_curve.setData(x, lr)
        self.schedule_plot.getPlotItem().setLabel("bottom", "minute" if timed else "step")
        where = (
            f"{n:,} images"
            if num_images
            else f"{ASSUMED_IMAGES:,} images assumed (no folder scanned yet)"
        )
        if timed:
            text = (
                f"A {_length(cfg.time_budget_s)} limit: the run times its first steps and sets "
                "its step count from that pace, so the learning rate ends at the deadline "
                f"(peak {peak:.3g} after a 5 % warm-up; batch {batch:,}, {where}). "
                "Plan now shows the step count."
            )
        else:
            text = (
                f"{total:,} steps = "
                + (
                    f"{cfg.epochs:,} epochs × "
                    if total == spe * cfg.epochs
                    else f"a limit of {cfg.max_steps:,} ({cfg.epochs:,} epochs of "
                )
                + f"{spe:,} step{'s' if spe != 1 else ''} of {batch:,} images"
                + ("" if total == spe * cfg.epochs else ")")
                + f" ({where}); peak LR {peak:.3g} after {warm:,} warm-up steps."
            )
            if cfg.time_budget_s > 0:
                text += f" Planned for {_length(cfg.time_budget_s)}; the deadline re-plans."
        shown = momentum is not None and method_config is not None
        if shown:
            from sslstudio.core.models.ema import (
                momentum_schedule,  # torch is loaded: the catalog listed this method
            )

            base, final = (float(getattr(method_config, name)) for name in momentum)
            try:
                m = momentum_schedule(
                    base, final, points
                )  # the same cosine, sampled at `points` steps
            except ValueError as exc:
                self.momentum_curve.setData([], [])
                text += f" Momentum: {exc}."
            else:
                self.momentum_curve.setData(x, m)
                text += f" Teacher momentum {base:g} → {final:g}."
        self.momentum_plot.setVisible(shown)
        self.caption.setText(text)
