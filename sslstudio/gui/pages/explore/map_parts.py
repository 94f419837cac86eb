"""The parts of :mod:`embedding_map` that hold none of its state: category palettes, a scatter
layer of identical points that costs no per-point Python, the map's view box, point-in-polygon
for the lasso (plain NumPy), the hover preview and the toolbar's look.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, QPoint, QPointF, Qt, QTimer
from PySide6.QtGui import QColor, QIcon, QPainterPath, QPixmap, QPolygonF
from PySide6.QtWidgets import (
    QFrame,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from sslstudio.gui import theme
from sslstudio.gui.theme import Theme

# qualitative palettes (Tableau-like), checked by eye on white and on the dark panel; a theme
# may override them with a "map_categories" list. Beyond 20 categories the colours repeat.
LIGHT = [
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#bcbd22",
    "#393b79",
    "#e6ab02",
    "#0b7a5e",
    "#ad494a",
    "#7b4173",
    "#6b8e23",
    "#5c7cfa",
    "#c2185b",
    "#a0522d",
    "#00838f",
    "#6a5acd",
]
DARK = [
    "#4dabf7",
    "#ffa94d",
    "#69db7c",
    "#ff6b6b",
    "#b197fc",
    "#d4a373",
    "#f783ac",
    "#3bc9db",
    "#d8e05a",
    "#8c9eff",
    "#ffd43b",
    "#20c997",
    "#e8866f",
    "#da77f2",
    "#a9e34b",
    "#74c0fc",
    "#ff8fab",
    "#c9a27e",
    "#63e6be",
    "#9775fa",
]
UNLABELLED = {"light": "#c4c9d0", "dark": "#5a616c"}


def category_colours(n: int, dark: bool) -> list[str]:
    """Colours of categories 0..n-1 (the palette repeats beyond its length)."""
    palette = theme.current().tokens.get("map_categories") or (DARK if dark else LIGHT)
    return [palette[i % len(palette)] for i in range(n)]


def points_in_polygon(x: np.ndarray, y: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Mask of the points inside ``poly`` ((M, 2) vertices; even-odd rule, a ray to +x).

    The points are sorted by y once, so each edge tests only the slice of points its y-span
    covers (two ``searchsorted``): O(N log N + N * crossings) rather than O(N * M), so a wiggly
    300-vertex lasso over 1M points stays interactive. ``QPainterPath.contains`` would cost a
    Python call and a QPointF per point (~1 s per million).
    """
    inside = np.zeros(x.shape[0], dtype=bool)
    poly = np.asarray(poly, dtype=np.float64)
    if poly.shape[0] < 3 or x.shape[0] == 0:
        return inside
    order = np.argsort(y, kind="stable")
    ys = y[order]
    for (xa, ya), (xb, yb) in zip(poly, np.roll(poly, -1, axis=0)):
        if ya == yb:
            continue  # a horizontal edge never crosses a horizontal ray
        lo, hi = (ya, yb) if ya < yb else (yb, ya)
        # half-open [lo, hi): a ray through a shared vertex counts exactly one of its two edges
        idx = order[np.searchsorted(ys, lo, "left") : np.searchsorted(ys, hi, "left")]
        cross = xa + (y[idx] - ya) * (xb - xa) / (yb - ya)
        inside[idx[x[idx] < cross]] ^= True
    return inside


def split_by(keys: np.ndarray, values: range) -> list[np.ndarray]:
    """For each v in ``values`` (consecutive ints), the indices where ``keys == v``: one stable
    sort instead of a full-length mask per value."""
    order = np.argsort(keys, kind="stable")
    bounds = np.searchsorted(keys[order], np.arange(values.start, values.stop + 1))
    return [order[bounds[i] : bounds[i + 1]] for i in range(len(values))]


def nearest_on_screen(
    xs: np.ndarray, ys: np.ndarray, x: float, y: float, pw: float, ph: float, max_px: float
) -> int | None:
    """Index of the point nearest (x, y) in pixels (``pw``, ``ph``: data units per pixel), if
    within ``max_px``. A cursor-sized window goes first: two comparisons per point, and the
    distances only for the few inside it (~2 ms per million points)."""
    if xs.size == 0 or not (pw > 0 and ph > 0):
        return None
    cand = np.flatnonzero((np.abs(xs - x) <= max_px * pw) & (np.abs(ys - y) <= max_px * ph))
    if cand.size == 0:
        return None
    d2 = ((xs[cand] - x) / pw) ** 2 + ((ys[cand] - y) / ph) ** 2
    i = int(np.argmin(d2))
    return int(cand[i]) if d2[i] <= max_px**2 else None


def band_path(kind: str, pts: list[QPointF]) -> QPainterPath:
    """The rubber band of a drag: the box from the first to the last point, or the lasso."""
    path, (a, b) = QPainterPath(), (pts[0], pts[-1])
    if kind == "box":
        path.addRect(min(a.x(), b.x()), min(a.y(), b.y()), abs(b.x() - a.x()), abs(b.y() - a.y()))
    else:
        path.addPolygon(QPolygonF([*pts, a]))
    return path


# What pyqtgraph's cached-pixmap paint reads of a point. Its full record adds five object
# columns that NumPy initialises one element at a time: 1.5 s of np.empty per million points.
SLIM = np.dtype(
    [
        ("x", float),
        ("y", float),
        ("visible", bool),
        ("sourceRect", [("x", int), ("y", int), ("w", int), ("h", int)]),
    ]
)


class UniformScatter(pg.ScatterPlotItem):
    """Points that all look alike, stored as :data:`SLIM` records filled in NumPy (``setData``
    looks each point's style up in Python: 2.6 s per million), never hoverable, never clicked."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._full = self.data.dtype

    def set_uniform(self, x: np.ndarray, y: np.ndarray, **style: Any) -> None:
        """Like ``setData(x=x, y=y, **style)`` with one symbol, size, pen and brush for all."""
        self.data = np.empty(0, dtype=self._full)  # setData appends to full records
        self.setData(x=x[:1], y=y[:1], pxMode=True, **style)  # renders the one atlas symbol
        data = np.empty(x.shape[0], dtype=SLIM)
        data["x"], data["y"], data["visible"] = x, y, True
        data["sourceRect"] = self.data["sourceRect"][0] if x.shape[0] else 0
        self.data = data
        self.prepareGeometryChange()
        self.informViewBoundsChanged()
        self.bounds = [None, None]
        self.invalidate()

    def updateSpots(self, dataSet: Any = None) -> None:  # noqa: N802, N803 (pyqtgraph names)
        if self.data.dtype != SLIM:
            return super().updateSpots(dataSet)
        # a new style or screen (device pixel ratio): one symbol to look up, for every point
        style = (self.opts["symbol"], self.opts["size"], self.opts["pen"], self.opts["brush"])
        self.data["sourceRect"] = self.fragmentAtlas[[style]][0]
        self._updateMaxSpotSizes()
        self.invalidate()

    def _style(self, opts: Any, data: Any = None, idx: Any = None, scale: Any = None) -> Any:
        if self.data.dtype != SLIM:  # the uncached paint path (exporters) asks per point
            yield from super()._style(opts, data, idx, scale)
            return
        n = len(self.data if idx is None else self.data[idx])
        for opt in opts:
            value = self.opts[opt]
            value = value * scale if opt == "size" and scale is not None else value
            yield np.full(n, value, dtype=object)

    def mouseClickEvent(self, ev: Any) -> None:  # noqa: N802 (its hit test makes SpotItems)
        ev.ignore()


class MapViewBox(pg.ViewBox):
    """Offers left drags and clicks to the map first; what it declines pans and zooms."""

    def __init__(self, on_drag: Callable[[Any], bool], on_click: Callable[[Any], None]) -> None:
        super().__init__(enableMenu=False)
        self._on_drag, self._on_click = on_drag, on_click

    def mouseDragEvent(self, ev: Any, axis: int | None = None) -> None:  # noqa: N802
        if not self._on_drag(ev):
            super().mouseDragEvent(ev, axis)

    def mouseClickEvent(self, ev: Any) -> None:  # noqa: N802
        if ev.button() == Qt.MouseButton.LeftButton:
            ev.accept()
            self._on_click(ev)


class HoverPreview(QFrame):
    """A thumbnail and a caption beside the cursor. A child widget rather than a tooltip window:
    it needs no window manager (offscreen tests) and shows up in ``grab()``."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setObjectName("mapPreview")
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)  # hover goes on
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        self.image, self.text = QLabel(), QLabel()
        self.text.setTextFormat(Qt.TextFormat.PlainText)
        lay.addWidget(self.image, 0, Qt.AlignmentFlag.AlignHCenter)
        lay.addWidget(self.text)
        self.hide()

    def set_pixmap(self, pm: QPixmap | None) -> None:
        self.image.setVisible(pm is not None)
        if pm is not None:
            self.image.setPixmap(pm)
        self.adjustSize()

    def show_at(self, cursor: QPoint) -> None:
        """Show below-right of ``cursor`` (parent coordinates), flipped at the parent's edges."""
        self.adjustSize()
        w, h, parent = self.width(), self.height(), self.parentWidget()
        pw, ph = parent.width(), parent.height()
        x = cursor.x() + 16 if cursor.x() + 16 + w <= pw else max(0, cursor.x() - w - 12)
        y = cursor.y() + 16 if cursor.y() + 16 + h <= ph else max(0, cursor.y() - h - 12)
        self.move(QPoint(x, y))
        self.show()
        self.raise_()


class Legend(QListWidget):
    """Colour swatch, category name and count; beside the plot, so it never covers points."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("mapLegend")
        self.setSelectionMode(QListWidget.SelectionMode.NoSelection)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.setFixedWidth(180)
        self.hide()

    def show_entries(self, entries: list[tuple[str, str]]) -> None:
        """``(colour, text)`` rows; hidden when there are none."""
        self.clear()
        for colour, text in entries:
            pm = QPixmap(12, 12)
            pm.fill(QColor(colour))
            self.addItem(QListWidgetItem(QIcon(pm), text))
        self.setVisible(bool(entries))


def map_stylesheet(t: Theme) -> str:
    """Mode buttons (checked = accent), the legend and the preview, in the theme's colours.
    The app's QSS leaves QToolButton to Fusion, whose checked state is hard to see."""
    c = {k: t.color(k) for k in ("panel", "border", "text", "accent", "accent_soft")}
    box = f"background: {c['panel']}; border: 1px solid {c['border']}; border-radius: 6px;"
    return (
        f"QToolButton {{ color: {c['text']}; {box} border-radius: 5px; padding: 3px 10px; }}"
        f"QToolButton:hover {{ border-color: {c['accent']}; }}"
        f"QToolButton:checked {{ background: {c['accent_soft']}; border-color: {c['accent']}; }}"
        f"QListWidget#mapLegend {{ color: {c['text']}; {box} }}"
        f"QFrame#mapPreview {{ {box} }}"
        f"QFrame#mapPreview QLabel {{ color: {c['text']}; background: transparent; border: none; }}"
    )


def tool_button(text: str, tip: str, checkable: bool = False) -> QToolButton:
    b = QToolButton()
    b.setText(text)
    b.setToolTip(tip)
    b.setCheckable(checkable)
    b.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # keys (Escape) stay with the plot
    return b


def single_shot(parent: QObject, ms: int, slot: Callable[[], None]) -> QTimer:
    timer = QTimer(parent)
    timer.setSingleShot(True)
    timer.setInterval(ms)
    timer.timeout.connect(slot)
    return timer
