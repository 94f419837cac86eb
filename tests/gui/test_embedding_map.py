"""The embedding map: selection maths against brute force, hover previews, a real mouse drag,
and 100k points without per-point objects."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QColor, QPixmap
from PySide6.QtTest import QTest

from sslstudio.gui.pages.explore.embedding_map import DIMMED, EmbeddingMap
from sslstudio.gui.pages.explore.map_parts import (
    SLIM,
    UniformScatter,
    category_colours,
    points_in_polygon,
)


def clusters(n: int = 1000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points in 3 Gaussian clusters and their cluster ids."""
    rng = np.random.default_rng(seed)
    cats = rng.integers(0, 3, n)
    centres = np.array([[-5.0, 0.0], [5.0, 0.0], [0.0, 6.0]])
    return (centres[cats] + rng.normal(0, 1.2, (n, 2))).astype(np.float32), cats


@pytest.fixture
def emap(qtbot) -> EmbeddingMap:  # noqa: ANN001
    m = EmbeddingMap()
    qtbot.addWidget(m)
    m.resize(640, 480)
    m.show()
    qtbot.waitExposed(m)
    coords, cats = clusters()
    m.set_points(coords)
    m.set_colours(cats, ["left", "right", "top"])
    return m


def brute_in_polygon(x: float, y: float, poly: list[tuple[float, float]]) -> bool:
    inside = False
    for i in range(len(poly)):
        (xa, ya), (xb, yb) = poly[i], poly[(i + 1) % len(poly)]
        if (ya > y) != (yb > y) and x < xa + (y - ya) * (xb - xa) / (yb - ya):
            inside = not inside
    return inside


def test_colours_legend_and_count(emap: EmbeddingMap) -> None:
    cats = clusters()[1]
    cats[:10] = -1
    emap.set_colours(cats, ["left", "right", "top"])
    texts = [emap.legend.item(i).text() for i in range(emap.legend.count())]
    counts = [int((cats == c).sum()) for c in range(3)]
    assert texts == [f"{n}  ({c:,})" for n, c in zip(["left", "right", "top"], counts)] + [
        "unlabelled  (10)"
    ]
    dots = [d for _, d in emap._groups]
    assert len(dots) == 4 and sum(len(d.data) for d in dots) == 1000
    grey = next(d for d in dots if d.zValue() == 0)  # unlabelled: one item, underneath
    assert len(grey.data) == 10
    assert category_colours(25, dark=False)[20] == category_colours(1, dark=False)[0]  # cycles
    assert emap.count_label.text() == "1,000 points, 0 selected"
    with pytest.raises(ValueError, match="shape"):
        emap.set_colours(np.zeros(5, int), [])


def test_box_selection_is_exact(emap: EmbeddingMap, qtbot) -> None:  # noqa: ANN001
    coords = clusters()[0].astype(np.float64)
    with qtbot.waitSignal(emap.selectionChanged) as sig:
        rows = emap.select_rect(6.0, -1.0, 2.0, 1.5)  # corners in any order
    x, y = coords[:, 0], coords[:, 1]
    want = np.flatnonzero((x >= 2) & (x <= 6) & (y >= -1) & (y <= 1.5))
    assert want.size > 20
    np.testing.assert_array_equal(rows, want)
    np.testing.assert_array_equal(sig.args[0], want)
    assert sum(len(d.data) for d in emap._sel_dots) == want.size  # drawn over the dimmed rest
    assert all(d.opacity() == DIMMED for _, d in emap._groups)
    assert emap.count_label.text() == f"1,000 points, {want.size} selected"
    more = emap.select_rect(-6, -1, -4, 1, add=True)
    assert set(want) < set(more)
    QTest.keyClick(emap.plot, Qt.Key.Key_Escape)
    assert emap.selection().size == 0 and not emap._sel_dots
    assert all(d.opacity() == 1.0 for _, d in emap._groups)


def test_lasso_matches_brute_force(emap: EmbeddingMap) -> None:
    coords = clusters()[0].astype(np.float64)
    triangle = [(-7.0, -2.0), (6.0, -1.0), (0.5, 7.5)]
    rows = emap.select_polygon(triangle)
    want = [i for i, (x, y) in enumerate(coords) if brute_in_polygon(x, y, triangle)]
    assert 100 < len(want) < 1000
    np.testing.assert_array_equal(rows, want)
    assert emap.select_polygon(triangle[:2]).size == 0  # not a polygon


def test_points_in_polygon_concave_and_self_crossing() -> None:
    rng = np.random.default_rng(1)
    pts = rng.uniform(-1, 11, (3000, 2))
    shapes = [
        [(0, 0), (10, 0), (10, 10), (5, 3), (0, 10)],  # concave "M"
        [(0, 0), (10, 10), (10, 0), (0, 10)],  # bow tie (crosses itself)
        [(0, 0), (10, 0), (10, 5), (4, 5), (4, 5), (0, 5)],  # repeated vertex, horizontal edges
    ]
    for poly in shapes:
        got = points_in_polygon(pts[:, 0], pts[:, 1], np.array(poly, float))
        want = [brute_in_polygon(x, y, poly) for x, y in pts]
        np.testing.assert_array_equal(got, want)


def test_highlight_draws_rows_on_top(emap: EmbeddingMap) -> None:
    emap.set_highlight([5, 7, 7, 5000, -1])  # out-of-range rows are dropped
    assert list(emap._hi_dots.data["x"]) == [emap._x[5], emap._x[7], emap._x[7]]
    assert emap._hi_dots.zValue() > max(d.zValue() for _, d in emap._groups)
    emap.set_highlight([])
    assert len(emap._hi_dots.data) == 0


def test_hover_shows_thumbnail_and_caption(emap: EmbeddingMap, qtbot) -> None:  # noqa: ANN001
    ready: set[int] = set()

    def thumb(row: int) -> QPixmap | None:
        if row not in ready:
            return None
        pm = QPixmap(48, 48)
        pm.fill(QColor("red"))
        return pm

    emap.thumbnail = thumb
    emap.caption = lambda row: f"img_{row}.png"
    row = 123
    scene = emap.vb.mapViewToScene(QPointF(emap._x[row], emap._y[row]))
    assert emap.nearest(emap._x[row], emap._y[row]) == row
    pw, _ = emap.vb.viewPixelSize()
    assert emap.nearest(emap._x.max() + 50 * pw, emap._y[row]) is None  # 50 px off: none
    view = emap.plot.mapFromScene(scene)
    with qtbot.waitSignal(emap.pointHovered) as sig:
        QTest.mouseMove(emap.plot.viewport(), view)
    hovered = sig.args[0]
    assert emap.preview.isVisible() and emap.preview.text.text() == f"img_{hovered}.png"
    assert not emap.preview.image.isVisible()  # no thumbnail yet
    ready.add(hovered)
    emap.thumbnail_loaded(hovered)
    assert emap.preview.image.isVisible() and emap.preview.image.pixmap().width() == 48
    with qtbot.waitSignal(emap.pointClicked) as clicked:
        QTest.mouseClick(emap.plot.viewport(), Qt.MouseButton.LeftButton, pos=view)
    assert clicked.args == [hovered]


def test_mouse_drag_in_box_mode_selects(emap: EmbeddingMap, qtbot) -> None:  # noqa: ANN001
    emap.buttons.button(1).click()
    assert emap.mode() == "box"
    vp = emap.plot.viewport()
    a, b = QPoint(vp.width() // 2 + 20, 40), QPoint(vp.width() - 20, vp.height() - 40)
    with qtbot.waitSignal(emap.selectionChanged) as sig:
        QTest.mousePress(vp, Qt.MouseButton.LeftButton, pos=a)
        for t in np.linspace(0, 1, 6)[1:]:
            QTest.qWait(11)
            QTest.mouseMove(vp, a + QPoint(int((b.x() - a.x()) * t), int((b.y() - a.y()) * t)))
        QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, pos=b)
    rows = sig.args[0]
    assert rows.size > 50 and (emap._x[rows] > 0).all()  # the right half of the view only
    p0, p1 = (
        emap.vb.mapSceneToView(emap.plot.mapToScene(a)),
        emap.vb.mapSceneToView(emap.plot.mapToScene(b)),
    )
    want = emap.select_rect(p0.x(), p0.y(), p1.x(), p1.y())
    np.testing.assert_array_equal(rows, want)


def test_100k_points_build_and_render(qtbot) -> None:  # noqa: ANN001
    m = EmbeddingMap()
    qtbot.addWidget(m)
    m.resize(500, 400)
    rng = np.random.default_rng(0)
    coords = rng.normal(0, 1, (100_000, 2)).astype(np.float32)
    m.set_points(coords)
    m.set_colours(rng.integers(-1, 25, 100_000), [f"c{i}" for i in range(25)])
    assert m.legend.count() == 26
    for _, d in m._groups:  # records filled in NumPy: one atlas symbol, no SpotItem
        assert (d.data["sourceRect"] == d.data["sourceRect"][0]).all()
        assert d.data.dtype == SLIM and d.data["sourceRect"]["w"][0] > 0
    image = m.grab().toImage()
    assert not image.isNull()
    centre = image.pixelColor(m.plot.geometry().center())
    assert centre != QColor(m.plot.backgroundBrush().color())  # dots were drawn


def test_lasso_drag_selects_inside_the_drawn_shape(emap: EmbeddingMap, qtbot) -> None:  # noqa: ANN001
    emap.set_mode("lasso")
    vp = emap.plot.viewport()
    w, h = vp.width(), vp.height()
    corners = [QPoint(20, h - 20), QPoint(w - 20, h - 20), QPoint(w // 2, 20)]
    path = [
        a + (b - a) * (i / 10)
        for a, b in zip(corners, corners[1:] + corners[:1])
        for i in range(10)
    ]
    with qtbot.waitSignal(emap.selectionChanged) as sig:
        QTest.mousePress(vp, Qt.MouseButton.LeftButton, pos=path[0])
        for p in path[1:]:
            QTest.qWait(11)  # pyqtgraph drops mouse moves less than 10 ms apart
            QTest.mouseMove(vp, p)
        QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, pos=path[-1])
    view = [emap.vb.mapSceneToView(emap.plot.mapToScene(p)) for p in path]
    poly = [(p.x(), p.y()) for p in view]
    want = [i for i in range(1000) if brute_in_polygon(emap._x[i], emap._y[i], poly)]
    assert 100 < len(want) < 1000
    # the lasso keeps a vertex per 3 px, and these vertices are 30+ px apart: the same polygon
    np.testing.assert_array_equal(sig.args[0], want)


def test_uniform_scatter_draws_like_scatter_plot_item(qtbot) -> None:  # noqa: ANN001
    """The NumPy-filled records paint exactly what pyqtgraph's own setData would, also after a
    restyle (the device-pixel-ratio path) and through an exporter (the per-point path)."""
    import pyqtgraph as pg
    from pyqtgraph.exporters import ImageExporter

    rng = np.random.default_rng(2)
    x, y = rng.uniform(0, 1, 300), rng.uniform(0, 1, 300)
    style = {"size": 7, "pen": pg.mkPen("k", width=0.8), "brush": pg.mkBrush("#d62728")}
    images = []
    for kind in ("pyqtgraph", "uniform", "restyled"):
        w = pg.PlotWidget(background="w")
        qtbot.addWidget(w)
        w.resize(300, 300)
        if kind == "pyqtgraph":
            item = pg.ScatterPlotItem(x=x, y=y, **style)
        else:
            item = UniformScatter()
            item.set_uniform(x, y, **{**style, "brush": "b"} if kind == "restyled" else style)
            if kind == "restyled":
                item.setBrush(style["brush"])
        w.addItem(item)
        w.setRange(xRange=(0, 1), yRange=(0, 1), padding=0.05)
        images.append(w.grab().toImage())
        if kind == "restyled":
            exported = ImageExporter(w.getPlotItem()).export(toBytes=True)
            assert not exported.isNull()
    assert images[0] == images[1] == images[2]


def test_non_finite_points_are_skipped_quietly(qtbot) -> None:  # noqa: ANN001
    import warnings

    m = EmbeddingMap()
    qtbot.addWidget(m)
    m.resize(300, 200)
    m.show()
    coords = np.array([[np.nan, 1.0], [0.0, 0.0], [1.0, 1.0], [np.inf, 0.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # pyqtgraph's bounds would warn about NaN - inf
        m.set_points(coords)
        m.set_colours(np.array([0, 0, 1, -1]), ["a", "b"])
        m.set_selection([0, 1, 3])
        m.set_highlight([0, 2])
        m.grab()
    assert m.vb.viewRange()[0][0] < 0 < 1 < m.vb.viewRange()[0][1]  # fitted to the finite ones
    np.testing.assert_array_equal(m.select_rect(-5, -5, 5, 5), [1, 2])
    assert m.nearest(np.nan, 0.0) is None
