"""A run's curves: loss, learning rate, speed, waiting for data and the health checks.

One widget, fed one event at a time through :meth:`RunPlots.on_event`: the Train page feeds it
live from the controller, the Runs page replays a finished run's log into it (the events decoded
by the one codec), so a run looks the same live and afterwards.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QGridLayout, QWidget

from sslstudio.core.events import Event, MonitorLogged, RunStarted, StepLogged
from sslstudio.core.train.runs import read_events
from sslstudio.gui import theme
from sslstudio.gui.run.history import curve_points
from sslstudio.gui.widgets.loss_plot import Ema, ThrottledPlot

# the collapse thresholds of core/train/monitor.py, which imports torch: the Runs page replays a
# log without loading the engine (tests/gui/test_run_plots.py checks they agree)
COLLAPSE_STD = 0.1
RANK_SHARE = 0.05

BAND = "The shaded band marks collapse: a curve inside it means the network has stopped "
TIPS = {
    "loss": (
        "<b>Loss</b>: how far the network is from its training goal, recognising two altered "
        "copies of the same image as one. It should fall, fast at first, then slowly. Its value "
        "alone does not say how useful the network is: the sentence at the top does."
    ),
    "health": (
        "<b>Spread (std×√d)</b>: how far apart the network places different images; about 1 is "
        "healthy, near 0 means it sees every image as the same.<br>"
        "<b>kNN top-1</b> (when the folder has class subfolders): the share of test images whose "
        "most similar images belong to the same class.<br>"
        "<b>Own-view retrieval</b>: the share of images the network finds again after a mild "
        "change of crop and colour.<br>"
        "<b>New slides</b> (with a check folder): the share of your labelled check images from "
        "other slides that the training folder's labelled images place in the right class.<br>"
        + BAND
        + "telling images apart."
    ),
    "rank": (
        "<b>Effective rank (RankMe)</b>: how many independent features the network uses to "
        "describe an image, out of the number it has. Higher is richer. " + BAND + "using most "
        "of its features (dimensional collapse)."
    ),
    "lr": (
        "<b>Learning rate</b>: how big a correction the network makes after each batch. "
        "Dashed: the plan (a warm-up, then a slow decline); solid: the rate used."
    ),
    "ips": "<b>Images / s</b>: training speed, images processed per second.",
    "wait": (
        "<b>Waiting for data</b>: the share of each step spent waiting for images to be read "
        "and altered. High values mean the processor preparing images, not the network, sets "
        "the pace."
    ),
}


class RunPlots(QWidget):
    """The six plots of a run in a grid; :meth:`on_event` adds what an event says to them."""

    def __init__(self, parent: QWidget | None = None, compact: bool = False) -> None:
        """``compact``: three plots a row, all one size, no axis captions (a half-width card)."""
        super().__init__(parent)
        self._compact = compact
        self.probe_size = 0  # images in the health check's probe set (0: all of them)
        self._probe_n = 0
        self._ema = Ema(0.95)
        self._bands: list[tuple[ThrottledPlot, pg.LinearRegionItem]] = []
        self._build()

    def _build(self) -> None:
        t, pen = theme.current(), theme.pen
        dots = dict(symbol="o", symbolSize=5, symbolPen=None)
        later = "Appears with the first health check, a few steps into training."
        self.loss_plot = ThrottledPlot("Loss")
        self.loss_plot.add_curve("raw", pen("loss_raw", 1), name="per step")
        self.loss_plot.add_curve("ema", pen("loss_ema"), name="smoothed")
        self.health_plot = ThrottledPlot("Spread and quality", placeholder=later)
        curves = (("std", "spread"), ("knn", "kNN"), ("view", "own view"), ("check", "new slides"))
        for key, name in curves:
            self.health_plot.add_curve(key, pen(key), name=name, symbolBrush=t.curve(key), **dots)
        self.health_plot.setYRange(0, 1.05, padding=0)
        self.health_plot.getPlotItem().enableAutoRange(y=False)
        self.rank_plot = ThrottledPlot("Effective rank", placeholder=later)
        self.rank_plot.add_curve("rank", pen("rank"), symbolBrush=t.curve("rank"), **dots)
        self.lr_plot = ThrottledPlot("Learning rate")
        self.lr_plot.add_curve("plan", pen("lr_plan", 1.5, dash=True), name="plan")
        self.lr_plot.add_curve("lr", pen("lr"), name="used")
        self.speed_plot = ThrottledPlot("Images / s")
        self.speed_plot.add_curve("ips", pen("ips"))
        self.wait_plot = ThrottledPlot("Waiting for data (%)")
        self.wait_plot.add_curve("wait", pen("wait"))
        self.wait_plot.setYRange(0, 100, padding=0.02)
        self.wait_plot.getPlotItem().enableAutoRange(y=False)
        tips = (
            (self.loss_plot, "loss"),
            (self.health_plot, "health"),
            (self.rank_plot, "rank"),
            (self.lr_plot, "lr"),
            (self.speed_plot, "ips"),
            (self.wait_plot, "wait"),
        )
        for plot, key in tips:
            plot.setToolTip(TIPS[key])
        self.plots = [plot for plot, _ in tips]
        self._series = {  # history.curve_points' series -> (plot, curve)
            "loss": (self.loss_plot, "raw"),
            "lr": (self.lr_plot, "lr"),
            "ips": (self.speed_plot, "ips"),
            "wait": (self.wait_plot, "wait"),
            "std": (self.health_plot, "std"),
            "knn": (self.health_plot, "knn"),
            "view": (self.health_plot, "view"),
            "check": (self.health_plot, "check"),
            "rank": (self.rank_plot, "rank"),
        }
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setSpacing(10)
        if self._compact:
            for i, plot in enumerate(self.plots):
                plot.setMinimumHeight(120)
                grid.addWidget(plot, i // 3, i % 3)
            return
        for plot in (self.lr_plot, self.speed_plot, self.wait_plot, self.rank_plot):
            plot.setMinimumHeight(120)  # the page holds at the window's minimum size
        grid.addWidget(self.loss_plot, 0, 0, 1, 2)
        grid.addWidget(self.health_plot, 0, 2, 1, 2)
        for col, plot in enumerate((self.lr_plot, self.speed_plot, self.wait_plot, self.rank_plot)):
            grid.addWidget(plot, 1, col)
            grid.setColumnStretch(col, 1)
        grid.setRowStretch(0, 3)
        grid.setRowStretch(1, 2)

    # -- events ---------------------------------------------------------------------------------

    def on_event(self, ev: Event) -> None:
        """Add what ``ev`` says: a RunStarted starts the curves afresh (with the steps before a
        resume read from the run's log), a StepLogged or MonitorLogged adds points."""
        if isinstance(ev, RunStarted):
            self._on_started(ev)
        elif isinstance(ev, MonitorLogged):
            if not self._bands:
                self._add_collapse_bands(ev.embed_dim)
            self._plot(ev)
        elif isinstance(ev, StepLogged):
            self._plot(ev)

    def replay(self, events: Iterable[Event], probe_size: int = 0) -> None:
        """A logged run, event by event, through the code that shows it live; drawn at once.
        A resume's RunStarted keeps the steps before it: the log holds them already."""
        self.reset()
        self.probe_size = probe_size
        started = False
        for ev in events:
            if isinstance(ev, RunStarted) and started and ev.start_step > 0:
                self._set_plan(ev)
                continue
            started = started or isinstance(ev, RunStarted)
            self.on_event(ev)
        self.redraw_now()

    def reset(self) -> None:
        for plot in self.plots:
            plot.clear_curves()
        for plot, band in self._bands:  # the next run may have another embedding size
            plot.removeItem(band)
        self._bands.clear()
        self._ema.reset()

    def _on_started(self, ev: RunStarted) -> None:
        self.reset()
        self._probe_n = min(self.probe_size, ev.num_images) if self.probe_size else ev.num_images
        if ev.start_step > 0:  # a resume: the steps before it, from the log the run kept
            for old in read_events(Path(ev.run_dir)):
                if isinstance(old, (StepLogged, MonitorLogged)) and old.step < ev.start_step:
                    self.on_event(old)
        self._set_plan(ev)

    def _set_plan(self, ev: RunStarted) -> None:
        self.lr_plot.set_curve("plan", np.arange(len(ev.lr_schedule)), ev.lr_schedule)

    def _plot(self, ev: Event) -> None:
        for name, step, value in curve_points(ev):
            plot, key = self._series[name]
            plot.append(key, step, value)
            if name == "loss":
                self.loss_plot.append("ema", step, self._ema.update(value))

    @property
    def smoothed_loss(self) -> float:
        return self._ema.value

    def curve_data(self) -> dict[str, tuple[list[float], list[float]]]:
        """Every curve's points by series name (tests: live and replayed runs draw the same)."""
        out = {}
        for plot in self.plots:
            for key in plot._curves:
                buf = plot.buffer(key)
                out[key] = (buf.x.tolist(), buf.y.tolist())
        return out

    def _add_collapse_bands(self, dim: int) -> None:
        """Shade where the core's collapse warnings fire (as monitor.collapse_warning)."""
        brush = QColor(*theme.current().curve("band"))
        rank_limit = max(2.0, RANK_SHARE * min(self._probe_n or dim, dim))
        for plot, top, tip in (
            (
                self.health_plot,
                COLLAPSE_STD,
                "Collapse: every image maps to nearly the same point",
            ),
            (
                self.rank_plot,
                rank_limit,
                "Dimensional collapse: the network uses very few of its features",
            ),
        ):
            band = pg.LinearRegionItem(
                (0, top), orientation="horizontal", movable=False, brush=brush, pen=pg.mkPen(None)
            )
            band.setZValue(-10)
            band.setToolTip(tip)
            plot.addItem(band)
            self._bands.append((plot, band))
        self.rank_plot.getPlotItem().setLabel("left", f"of {dim:,}")

    # -- drawing --------------------------------------------------------------------------------

    def restyle(self, _theme: object = None) -> None:
        """After a light/dark switch: every plot, and the collapse bands' shade."""
        brush = QColor(*theme.current().curve("band"))
        for plot in self.plots:
            theme.restyle_plot(plot)
            plot.retitle()  # the key colours under the title follow the theme
        for _, band in self._bands:
            band.setBrush(brush)
            band.update()

    def redraw_now(self) -> None:
        """Flush the throttled plots (screenshots, tests, a replayed run)."""
        for plot in self.plots:
            plot.redraw()
