"""Throttled training curves: points go into growing NumPy buffers, the screen updates at ~10 Hz.

A run can log thousands of steps a minute; calling ``setData`` per step would re-upload the
whole curve each time and starve the event loop. Here ``append`` is O(1) amortised (the buffer
doubles when full) and only marks the plot dirty; a single-shot timer (~100 ms) redraws every
dirty curve once, with pyqtgraph's peak downsampling and clip-to-view doing the rest. Plots
fed by the same event get timers 17 ms apart, so their repaints (axes, text) land in separate
event-loop turns instead of one long one (measured by ``bench/gui_latency.py``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QLabel, QWidget

from sslstudio.gui import theme
from sslstudio.gui.widgets.grid_axis import grid_axes

REDRAW_MS = 100
STAGGER_MS = 17  # one frame: successive plots repaint in successive turns of the event loop
STAGGER_SLOTS = 6
MIN_STEP_SPAN = 10  # a curve of one or two points still gets a step axis from 0 to here
CAPTION_HEIGHT = 200  # below this height the "step" caption gives its line to the curves


class CurveBuffer:
    """Append-only (x, y) float64 arrays with amortised O(1) growth."""

    def __init__(self, capacity: int = 1024) -> None:
        self._x = np.empty(max(1, capacity), dtype=np.float64)
        self._y = np.empty(max(1, capacity), dtype=np.float64)
        self._n = 0

    def __len__(self) -> int:
        return self._n

    @property
    def capacity(self) -> int:
        return int(self._x.shape[0])

    def append(self, x: float, y: float) -> None:
        if self._n == self._x.shape[0]:
            self._grow(self._n + 1)
        self._x[self._n] = x
        self._y[self._n] = y
        self._n += 1

    def extend(self, xs: Sequence[float] | np.ndarray, ys: Sequence[float] | np.ndarray) -> None:
        xs, ys = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
        if xs.shape != ys.shape or xs.ndim != 1:
            raise ValueError(f"x and y must be 1-D of one length, got {xs.shape} and {ys.shape}")
        end = self._n + xs.shape[0]
        if end > self._x.shape[0]:
            self._grow(end)
        self._x[self._n : end] = xs
        self._y[self._n : end] = ys
        self._n = end

    def _grow(self, need: int) -> None:
        cap = self._x.shape[0]
        while cap < need:
            cap *= 2
        for name in ("_x", "_y"):
            new = np.empty(cap, dtype=np.float64)
            new[: self._n] = getattr(self, name)[: self._n]
            setattr(self, name, new)

    def clear(self) -> None:
        self._n = 0

    @property
    def x(self) -> np.ndarray:
        return self._x[: self._n]

    @property
    def y(self) -> np.ndarray:
        return self._y[: self._n]


class Ema:
    """Exponential moving average with start-up bias correction (Adam's), so early points are
    not pulled to 0."""

    def __init__(self, decay: float = 0.9) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        self.decay = decay
        self._avg = 0.0
        self._count = 0

    def update(self, value: float) -> float:
        if not math.isfinite(value):
            return self.value
        self._count += 1
        self._avg = self.decay * self._avg + (1 - self.decay) * value
        return self.value

    @property
    def value(self) -> float:
        return self._avg / (1 - self.decay**self._count) if self._count else float("nan")

    def reset(self) -> None:
        self._avg, self._count = 0.0, 0


class ThrottledPlot(pg.PlotWidget):
    """A plot of named curves fed through :class:`CurveBuffer` s, redrawn at most every ~100 ms."""

    _made = 0  # plots created so far: each gets the next stagger slot

    def __init__(
        self,
        title: str,
        y_label: str = "",
        parent: QWidget | None = None,
        legend: bool = False,
        placeholder: str = "Appears when training starts.",
    ) -> None:
        super().__init__(parent, axisItems=grid_axes(steps=True))
        self.setObjectName("plot")
        item = self.getPlotItem()
        self._title = title
        self._keyed: list[tuple[str, float, bool, str]] = []  # curves named under the title
        self._extra_keys: list[tuple[str, str]] = []  # (colour, name) of curves drawn directly
        item.setTitle(title, size="10pt")
        item.setLabel("bottom", "step")
        if y_label:
            item.setLabel("left", y_label)
        item.showGrid(x=True, y=True, alpha=0.2)
        item.setDownsampling(auto=True, mode="peak")
        item.setClipToView(True)
        item.hideButtons()
        item.setMenuEnabled(False)
        self.setMinimumHeight(150)
        self._legend = self._legend_beside() if legend else None
        # before the first point: a sentence, not an empty 0-1 grid that reads as "zero"
        self.placeholder = QLabel(placeholder, self)
        self.placeholder.setObjectName("placeholder")
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setWordWrap(True)
        self._show_empty(True)
        self._curves: dict[str, tuple[CurveBuffer, pg.PlotDataItem]] = {}
        self._dirty: set[str] = set()
        self.redraws = 0  # counted for tests: the throttle must coalesce appends
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(REDRAW_MS + STAGGER_MS * (ThrottledPlot._made % STAGGER_SLOTS))
        ThrottledPlot._made += 1
        self._timer.timeout.connect(self.redraw)

    def _legend_beside(self) -> pg.LegendItem:
        """A legend in its own column right of the curves, so it never covers them (for curves
        drawn with ``plot(name=...)``; :meth:`add_curve` names go under the title instead)."""
        item = self.getPlotItem()
        legend = pg.LegendItem(labelTextSize="8pt", verSpacing=-4)
        item.layout.addItem(legend, 2, 3)
        item.legend = legend  # plot(name=...) files its curves here
        return legend

    def set_keys(self, keys: list[tuple[str, str]]) -> None:
        """Name curves drawn with ``plot()`` under the title: (colour, name) pairs."""
        self._extra_keys = list(keys)
        self.retitle()

    def retitle(self) -> None:
        """The title, with a key line under it naming :meth:`add_curve` 's named curves in
        their theme colours: beside the curves, never over them, and no width taken."""
        t = theme.current()
        keys = []
        for key, _width, dash, name in self._keyed:
            mark = "╍╍" if dash else "━━"
            keys.append(f'<span style="color:{t.curve(key)}">{mark}</span>&nbsp;{name}')
        for colour, name in self._extra_keys:
            keys.append(f'<span style="color:{colour}">━━</span>&nbsp;{name}')
        text = self._title
        if keys:
            text += f'<br><span style="font-size:8pt">{"&nbsp;&nbsp; ".join(keys)}</span>'
        self.getPlotItem().setTitle(text, size="10pt", color=t.color("plot_fg"))

    def is_empty(self) -> bool:
        """No point to show in any curve (drawn directly with ``plot`` or through a buffer)."""
        xs = (c.getData()[0] for c in self.getPlotItem().listDataItems())
        return not any(x is not None and len(x) for x in xs)

    def _show_empty(self, empty: bool) -> None:
        item = self.getPlotItem()
        for name in ("left", "bottom"):
            item.getAxis(name).setVisible(not empty)
        item.getViewBox().setVisible(not empty)
        if self._legend is not None:
            self._legend.setVisible(not empty)
        self.placeholder.setVisible(empty)

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 (Qt override)
        super().resizeEvent(event)
        if "placeholder" not in self.__dict__:  # pyqtgraph resizes during its own __init__
            return
        self.getPlotItem().showLabel("bottom", self.height() >= CAPTION_HEIGHT)
        self.placeholder.setGeometry(12, 24, max(0, self.width() - 24), max(0, self.height() - 36))

    def refresh(self) -> None:
        """Placeholder or axes, and a step range no narrower than :data:`MIN_STEP_SPAN`
        (pyqtgraph centres a lone point in -0.5..0.5 of a unit it guesses: -400..400 at step 0)."""
        empty = self.is_empty()
        self._show_empty(empty)
        if empty:
            return
        item = self.getPlotItem()
        xs = [c.getData()[0] for c in item.listDataItems()]
        lo = min(float(np.min(x)) for x in xs if x is not None and len(x))
        hi = max(float(np.max(x)) for x in xs if x is not None and len(x))
        if hi - lo < MIN_STEP_SPAN:
            item.enableAutoRange(x=False)
            item.setXRange(lo, lo + MIN_STEP_SPAN, padding=0.02)
        else:
            item.enableAutoRange(x=True)

    def add_curve(
        self, key: str, pen: object, name: str | None = None, **kwargs: object
    ) -> CurveBuffer:
        buf = CurveBuffer()
        curve = theme.tag(self.getPlotItem().plot([], [], pen=pen, **kwargs), pen)
        curve.lone_dot = "symbol" not in kwargs  # a line of one point draws nothing: a dot
        spec = getattr(pen, "theme_key", None)
        if name and spec is not None:
            self._keyed.append((*spec, name))
            self.retitle()
        self._curves[key] = (buf, curve)
        return buf

    def buffer(self, key: str) -> CurveBuffer:
        return self._curves[key][0]

    def append(self, key: str, x: float, y: float) -> None:
        self._curves[key][0].append(x, y)
        self._mark(key)

    def set_curve(
        self, key: str, xs: Sequence[float] | np.ndarray, ys: Sequence[float] | np.ndarray
    ) -> None:
        buf = self._curves[key][0]
        buf.clear()
        buf.extend(xs, ys)
        self._mark(key)

    def clear_curves(self) -> None:
        for key, (buf, _) in self._curves.items():
            buf.clear()
            self._dirty.add(key)
        self.redraw()

    def _mark(self, key: str) -> None:
        self._dirty.add(key)
        if not self._timer.isActive():
            self._timer.start()

    def redraw(self) -> None:
        """Upload dirty curves now (the timer calls this; tests and screenshots may too)."""
        self._timer.stop()
        if not self._dirty:
            return
        for key in self._dirty:
            buf, curve = self._curves[key]
            if curve.lone_dot:
                curve.setSymbol("o" if len(buf) == 1 else None)
                curve.setSymbolSize(6)
                curve.setSymbolPen(None)
                curve.setSymbolBrush(pg.mkPen(curve.opts["pen"]).color())
            curve.setData(buf.x, buf.y)
        self._dirty.clear()
        self.redraws += 1
        self.refresh()
