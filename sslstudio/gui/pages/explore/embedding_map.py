"""The Explore page's 2-D embedding map: up to ~1M points, coloured by category, with hover
previews, box/lasso selection and highlighted neighbours.

Speed comes from what pyqtgraph is *not* asked to do. Each category is one ``ScatterPlotItem``
with one brush, pen and size, so a repaint is a single ``drawPixmapFragments`` call from one
pre-rendered symbol, and its per-point records are filled in NumPy (``setData`` looks the style
up point by point in Python: 2.6 s for 1M). No item is hoverable and the dots ignore clicks,
because pyqtgraph's hover/click path builds a Python ``SpotItem`` per point. Hover and click
find the nearest point with NumPy instead, at most once per 30 ms of mouse movement.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QObject, QPointF, Qt, Signal, Slot
from PySide6.QtGui import QColor, QKeyEvent, QPainterPath, QPixmap
from PySide6.QtWidgets import (
    QButtonGroup,
    QGraphicsPathItem,
    QHBoxLayout,
    QLabel,
    QVBoxLayout,
    QWidget,
)

from sslstudio.gui import theme
from sslstudio.gui.pages.explore.map_parts import (
    UNLABELLED,
    HoverPreview,
    Legend,
    MapViewBox,
    UniformScatter,
    band_path,
    category_colours,
    map_stylesheet,
    nearest_on_screen,
    points_in_polygon,
    single_shot,
    split_by,
    tool_button,
)

HOVER_MS = 30  # one nearest-point lookup per 30 ms of mouse movement, however fast the mouse
HOVER_PX = 8.0
LASSO_STEP_PX = 3.0  # a lasso vertex per 3 px of movement: smooth, yet few edges to test
THUMB_RETRY_MS = 150  # re-ask the provider while the preview waits for its thumbnail
DIMMED = 0.22  # opacity of everything outside a selection (item opacity: no per-point cost)
MODES = ("pan", "box", "lasso")


class EmbeddingMap(QWidget):
    """A scatter map of ``(N, 2)`` coordinates; a row is an index into those coordinates."""

    selectionChanged = Signal(object)  # np.ndarray of the selected rows (int64, sorted, unique)
    pointClicked = Signal(int)
    pointHovered = Signal(int)  # the row under the cursor, -1 when it leaves every point

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.thumbnail: Callable[[int], QPixmap | None] | None = None
        self.caption: Callable[[int], str] | None = None
        self._x = self._y = np.empty(0, np.float64)
        self._finite = np.empty(0, bool)
        self._cats: np.ndarray | None = None
        self._names: list[str] = []
        self._selection = self._highlight = np.empty(0, np.int64)
        self._groups: list[tuple[str, UniformScatter]] = []  # (colour, dots) per drawn category
        self._group_of = np.empty(0, np.int32)  # each point's index into _groups
        self._sel_dots: list[UniformScatter] = []
        self._mode, self._hover_row = "pan", -1
        self._drag: tuple[str, bool] | None = None  # (box | lasso, add) while dragging
        self._drag_pts: list[QPointF] = []
        self._last_scene = self._hover_pos = QPointF()

        self.vb = MapViewBox(self._on_drag, self._on_click)
        self.plot = pg.PlotWidget(viewBox=self.vb)
        item = self.plot.getPlotItem()
        for axis in ("left", "bottom"):
            item.hideAxis(axis)  # projection coordinates mean nothing to a user
        item.hideButtons()
        self.vb.disableAutoRange()  # else every change re-measures the bounds of all points
        self._hi_dots, self._band = UniformScatter(), QGraphicsPathItem()
        for z, it in ((3, self._hi_dots), (4, self._band)):
            it.setZValue(z)
            self.vb.addItem(it, ignoreBounds=True)

        bar = QHBoxLayout()
        self.buttons = QButtonGroup(self)
        for i, tip in enumerate(
            (
                "Drag pans, wheel zooms, Shift+drag selects a box",
                "Drag a rectangle to select (Ctrl+drag adds)",
                "Draw around points to select (Ctrl+drag adds)",
            )
        ):
            b = tool_button(MODES[i].capitalize(), tip, checkable=True)
            self.buttons.addButton(b, i)
            bar.addWidget(b)
        self.buttons.idClicked.connect(lambda i: self.set_mode(MODES[i]))
        self.fit_button = tool_button("Fit", "Show every point")
        self.fit_button.clicked.connect(self.fit)
        bar.addWidget(self.fit_button)
        bar.addStretch(1)
        self.count_label = QLabel()
        self.count_label.setObjectName("muted")
        bar.addWidget(self.count_label)
        self.legend = Legend()
        body = QHBoxLayout()
        body.addWidget(self.plot, 1)
        body.addWidget(self.legend)
        lay = QVBoxLayout(self)
        for layout in (bar, body, lay):
            layout.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(bar)
        lay.addLayout(body, 1)

        self.preview = HoverPreview(self)
        self._hover_timer = single_shot(self, HOVER_MS, self._hover)
        self._thumb_timer = single_shot(
            self, THUMB_RETRY_MS, lambda: self.thumbnail_loaded(self._hover_row)
        )
        self.plot.scene().sigMouseMoved.connect(self._on_mouse_moved)
        self.plot.installEventFilter(self)
        self.plot.viewport().installEventFilter(self)
        self.set_mode("pan")
        self.refresh_theme()

    # -- data -------------------------------------------------------------------------------------

    def set_points(self, coords: np.ndarray) -> None:
        """Show ``(N, 2)`` coordinates and fit the view. Colours, selection and highlight stay
        when N is unchanged (a new projection of the same images), else they are cleared."""
        coords = np.asarray(coords)
        if coords.ndim != 2 or coords.shape[1] != 2:
            raise ValueError(f"coords must have shape (N, 2), got {coords.shape}")
        if coords.shape[0] != self._x.shape[0]:
            self._cats, self._names = None, []
            self._selection = self._highlight = np.empty(0, np.int64)
        self._x = np.ascontiguousarray(coords[:, 0], dtype=np.float64)
        self._y = np.ascontiguousarray(coords[:, 1], dtype=np.float64)
        self._finite = np.isfinite(self._x) & np.isfinite(self._y)
        self._rebuild()
        self.fit()

    def set_colours(self, categories: np.ndarray, names: Sequence[str]) -> None:
        """Colour point i by ``categories[i]``, named ``names[c]`` in the legend; -1 means
        unlabelled (grey, drawn underneath)."""
        cats = np.asarray(categories).astype(np.int64, copy=False)
        if cats.shape != self._x.shape:
            raise ValueError(f"categories must have shape ({self._x.shape[0]},), got {cats.shape}")
        self._cats, self._names = cats, list(names)
        self._rebuild()

    def set_highlight(self, rows: Sequence[int] | np.ndarray) -> None:
        """Draw ``rows`` (e.g. a query and its neighbours) larger, outlined, on top."""
        self._highlight = self._valid(rows, unique=False)
        self._draw_highlight()

    # -- selection --------------------------------------------------------------------------------

    def selection(self) -> np.ndarray:
        return self._selection.copy()

    def set_selection(self, rows: Sequence[int] | np.ndarray) -> None:
        rows = self._valid(rows)
        if not np.array_equal(rows, self._selection):
            self._selection = rows
            self._draw_selection()
            self.selectionChanged.emit(rows.copy())

    def clear_selection(self) -> None:
        self.set_selection([])

    def select_rect(
        self, x0: float, y0: float, x1: float, y1: float, add: bool = False
    ) -> np.ndarray:
        """Select the points in a box (data coordinates, edges included); returns the selection."""
        (x0, x1), (y0, y1) = sorted((x0, x1)), sorted((y0, y1))
        mask = (self._x >= x0) & (self._x <= x1) & (self._y >= y0) & (self._y <= y1)
        return self._select(np.flatnonzero(mask), add)

    def select_polygon(
        self, points: Sequence[tuple[float, float]] | np.ndarray, add: bool = False
    ) -> np.ndarray:
        """Select the points inside a polygon (data coordinates, even-odd rule)."""
        poly = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        if poly.shape[0] < 3:
            return self._select(np.empty(0, np.int64), add)
        (xa, ya), (xb, yb) = poly.min(axis=0), poly.max(axis=0)
        cand = np.flatnonzero((self._x >= xa) & (self._x <= xb) & (self._y >= ya) & (self._y <= yb))
        return self._select(cand[points_in_polygon(self._x[cand], self._y[cand], poly)], add)

    def _select(self, rows: np.ndarray, add: bool) -> np.ndarray:
        self.set_selection(np.union1d(self._selection, rows) if add else rows)
        return self._selection.copy()

    # -- view -------------------------------------------------------------------------------------

    def set_mode(self, mode: str) -> None:
        """``"pan"`` (a drag pans), ``"box"`` or ``"lasso"`` (a drag selects)."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self._mode = mode
        self.buttons.button(MODES.index(mode)).setChecked(True)
        shape = Qt.CursorShape.OpenHandCursor if mode == "pan" else Qt.CursorShape.CrossCursor
        self.plot.viewport().setCursor(shape)

    def mode(self) -> str:
        return self._mode

    def fit(self) -> None:
        """Show every (finite) point."""
        x, y = self._x[self._finite], self._y[self._finite]
        ranges = [(float(v.min()), float(v.max())) if v.size else (-1.0, 1.0) for v in (x, y)]
        # a zero-width range (one point, a line) would make the view transform singular
        xr, yr = [(lo, hi) if hi > lo else (lo - 1, lo + 1) for lo, hi in ranges]
        self.vb.setRange(xRange=xr, yRange=yr, padding=0.04)

    def nearest(self, x: float, y: float, max_px: float = HOVER_PX) -> int | None:
        """The row nearest (on screen) to the data point (x, y), if within ``max_px`` pixels."""
        pw, ph = self.vb.viewPixelSize()
        return nearest_on_screen(self._x, self._y, x, y, pw, ph, max_px)

    # -- drawing ----------------------------------------------------------------------------------

    def refresh_theme(self, _theme: object = None) -> None:
        """Re-read the colours of :mod:`sslstudio.gui.theme` (call after the theme changed)."""
        t = theme.current()
        self.plot.setBackground(t.color("plot_bg"))
        self._band.setPen(pg.mkPen(t.color("accent"), width=1.5, style=Qt.PenStyle.DashLine))
        band = QColor(t.color("accent"))
        band.setAlpha(40)
        self._band.setBrush(band)
        self.setStyleSheet(map_stylesheet(t))
        self._rebuild()

    def _point_size(self) -> float:
        # 8 px for a thousand images, 3 px for a million, so dense clusters keep their shape
        return min(8.0, max(3.0, 14.0 - 2.0 * math.log10(max(self._x.shape[0], 1))))

    def _style(self, colour: str) -> dict[str, Any]:
        n, size = self._x.shape[0], self._point_size()
        brush = QColor(colour)
        brush.setAlpha(255 if n <= 20_000 else 210)  # translucent when dense: overlap = density
        edge = pg.mkPen(theme.current().color("plot_bg"), width=0.8) if size >= 5 else None
        return {"size": size, "pen": edge, "brush": brush, "symbol": "o"}

    def _rebuild(self) -> None:
        for _, dots in self._groups:
            self.vb.removeItem(dots)
        self._groups, n, t = [], self._x.shape[0], theme.current()
        self._group_of = np.zeros(n, np.int32)
        parts: list[tuple[np.ndarray, str, str, int]] = []  # rows, colour, legend text, category
        if self._cats is None:
            parts.append((np.arange(n), category_colours(1, t.name == "dark")[0], "", 0))
        else:
            k = int(self._cats.max(initial=-1)) + 1
            colours = [UNLABELLED[t.name], *category_colours(k, t.name == "dark")]
            names = ["unlabelled", *self._names[:k]]
            names += [f"category {c}" for c in range(len(names) - 1, k)]
            for c, rows in enumerate(split_by(self._cats, range(-1, k)), start=-1):
                if rows.size:
                    parts.append((rows, colours[c + 1], f"{names[c + 1]}  ({rows.size:,})", c))
        for g, (rows, colour, _, c) in enumerate(parts):
            self._group_of[rows] = g
            rows = rows[self._finite[rows]]  # NaN/inf (a diverged run) would break the bounds
            dots = UniformScatter()
            dots.set_uniform(self._x[rows], self._y[rows], **self._style(colour))
            dots.setZValue(0 if c < 0 else 1)  # unlabelled grey underneath
            self.vb.addItem(dots, ignoreBounds=True)
            self._groups.append((colour, dots))
        legend = sorted(parts, key=lambda p: p[3] < 0)  # the unlabelled listed last
        self.legend.show_entries([(colour, text) for _, colour, text, _ in legend if text])
        self._draw_selection()
        self._draw_highlight()

    def _draw_selection(self) -> None:
        """The selection in full colour over everything else, dimmed (one item per category)."""
        for dots in self._sel_dots:
            self.vb.removeItem(dots)
        self._sel_dots, sel = [], self._selection
        for _, dots in self._groups:
            dots.setOpacity(DIMMED if sel.size else 1.0)
        drawn = sel[self._finite[sel]]
        parts = split_by(self._group_of[drawn], range(len(self._groups)))
        for (colour, _), rows in zip(self._groups, (drawn[i] for i in parts)):
            if rows.size:
                dots = UniformScatter()
                dots.set_uniform(self._x[rows], self._y[rows], **self._style(colour))
                dots.setZValue(2)
                self.vb.addItem(dots, ignoreBounds=True)
                self._sel_dots.append(dots)
        self.count_label.setText(f"{self._x.shape[0]:,} points, {sel.size:,} selected")

    def _draw_highlight(self) -> None:
        h = self._highlight[self._finite[self._highlight]]
        brushes = [self._groups[g][0] for g in self._group_of[h]]  # few points: per-point is fine
        self._hi_dots.setData(
            x=self._x[h],
            y=self._y[h],
            size=max(self._point_size() * 1.8, 10),
            pen=pg.mkPen(theme.current().color("text"), width=2),
            brush=brushes,
        )

    # -- mouse and keys ---------------------------------------------------------------------------

    def _on_drag(self, ev: Any) -> bool:
        """Box and lasso drags (False: the view pans instead)."""
        mods = ev.modifiers()
        if ev.isStart():
            shift = bool(mods & Qt.KeyboardModifier.ShiftModifier)
            if ev.button() != Qt.MouseButton.LeftButton or (self._mode == "pan" and not shift):
                return False
            add = bool(mods & Qt.KeyboardModifier.ControlModifier)
            self._drag = ("box" if self._mode == "pan" else self._mode, add)
            self._last_scene = ev.buttonDownScenePos()
            self._drag_pts = [self.vb.mapSceneToView(self._last_scene)]
            self._hide_preview()
        elif self._drag is None:
            return False
        ev.accept()
        (kind, add), here = self._drag, self.vb.mapSceneToView(ev.scenePos())
        first = self._drag_pts[0]
        if (
            kind == "lasso"
            and (ev.scenePos() - self._last_scene).manhattanLength() >= LASSO_STEP_PX
        ):
            self._drag_pts.append(here)
            self._last_scene = ev.scenePos()
        self._band.setPath(band_path(kind, [*self._drag_pts, here]))
        if ev.isFinish():
            self._band.setPath(QPainterPath())
            self._drag = None
            if kind == "box":
                self.select_rect(first.x(), first.y(), here.x(), here.y(), add=add)
            else:
                self.select_polygon([(p.x(), p.y()) for p in [*self._drag_pts, here]], add=add)
        return True

    def _on_click(self, ev: Any) -> None:
        p = self.vb.mapSceneToView(ev.scenePos())
        row = self.nearest(p.x(), p.y())
        if row is not None:
            self.pointClicked.emit(row)

    def _on_mouse_moved(self, scene_pos: QPointF) -> None:
        self._hover_pos = QPointF(scene_pos)
        if self._drag is None and not self._hover_timer.isActive():
            self._hover_timer.start()

    def _hover(self) -> None:
        if self._drag is not None:
            return
        p = self.vb.mapSceneToView(self._hover_pos)
        row = self.nearest(p.x(), p.y())
        if row is None:
            self._hide_preview()
            return
        if row != self._hover_row:
            self._hover_row = row
            self.pointHovered.emit(row)
            self.preview.text.setText(self.caption(row) if self.caption else f"row {row:,}")
            self.thumbnail_loaded(row)
        self.preview.show_at(
            self.plot.viewport().mapTo(self, self.plot.mapFromScene(self._hover_pos))
        )

    @Slot(int)
    def thumbnail_loaded(self, row: int) -> None:
        """Connect a thumbnail cache's ``loaded(row)`` here; until the hovered point's thumbnail
        arrives the provider is also re-asked every 150 ms, so connecting is optional."""
        if row != self._hover_row or row < 0:
            return
        pm = self.thumbnail(row) if self.thumbnail else None
        self.preview.set_pixmap(pm)
        if pm is None and self.thumbnail is not None:
            self._thumb_timer.start()
        else:
            self._thumb_timer.stop()

    def _hide_preview(self) -> None:
        self._thumb_timer.stop()
        self.preview.hide()
        if self._hover_row != -1:
            self._hover_row = -1
            self.pointHovered.emit(-1)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt override)
        if event.type() == QEvent.Type.Leave and obj is self.plot.viewport():
            self._hover_timer.stop()
            self._hide_preview()
        elif isinstance(event, QKeyEvent) and event.key() == Qt.Key.Key_Escape:
            if event.type() == QEvent.Type.KeyPress:
                self.clear_selection()
            return True
        return super().eventFilter(obj, event)

    # -- helpers ----------------------------------------------------------------------------------

    def _valid(self, rows: Sequence[int] | np.ndarray, unique: bool = True) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        rows = rows[(rows >= 0) & (rows < self._x.shape[0])]
        return np.unique(rows) if unique else rows
