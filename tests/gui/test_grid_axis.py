"""Plot grids drawn opaque (the colour a translucent line would show), and pages laid out unseen."""

from __future__ import annotations

import numpy as np
from PySide6.QtGui import QColor, QPainter, QPixmap
from PySide6.QtWidgets import QLabel, QStackedWidget, QVBoxLayout, QWidget

from sslstudio.gui import theme
from sslstudio.gui.widgets.grid_axis import GridAxis, blend
from sslstudio.gui.widgets.loss_plot import ThrottledPlot
from sslstudio.gui.widgets.panels import lay_out_unseen


def test_blend_is_source_over_onto_an_opaque_background(qapp):
    assert blend(QColor(255, 255, 255, 51), QColor(0, 0, 0)).getRgb() == (51, 51, 51, 255)
    assert blend(QColor(200, 100, 0, 255), QColor(0, 50, 90)).getRgb() == (200, 100, 0, 255)
    assert blend(QColor(200, 100, 0, 0), QColor(0, 50, 90)).getRgb() == (0, 50, 90, 255)
    # the same pixel as Qt's own compositing of the translucent colour
    pix = QPixmap(1, 1)
    pix.fill(QColor(30, 40, 50))
    p = QPainter(pix)
    p.fillRect(0, 0, 1, 1, QColor(220, 180, 10, 77))
    p.end()
    qt = pix.toImage().pixelColor(0, 0).getRgb()
    assert np.allclose(qt, blend(QColor(220, 180, 10, 77), QColor(30, 40, 50)).getRgb(), atol=1)


def test_grid_pens_become_opaque_and_keep_their_look(qtbot):
    plot = ThrottledPlot("Loss", "loss")
    qtbot.addWidget(plot)
    plot.resize(400, 240)
    plot.add_curve("loss", theme.pen("loss_ema"))
    plot.set_curve("loss", [0, 1, 2], [1.0, 0.5, 0.2])
    plot.redraw()
    plot.show()
    qtbot.waitExposed(plot)
    axis = plot.getPlotItem().getAxis("left")
    assert isinstance(axis, GridAxis)
    target = QPixmap(1, 1)  # kept alive while the painter is open
    p = QPainter(target)
    try:
        specs = axis.generateDrawSpecs(p)
        plain = super(GridAxis, axis).generateDrawSpecs(p)
    finally:
        p.end()
    _, ticks, _ = specs
    _, plain_ticks, _ = plain
    assert any(
        pen.color().alpha() < 255 for pen, _, _ in plain_ticks
    )  # pyqtgraph's own: translucent
    assert ticks and all(pen.color().alpha() == 255 for pen, _, _ in ticks)
    under = QColor(theme.current().color("plot_bg"))
    for (pen, a1, a2), (plain_pen, b1, b2) in zip(ticks, plain_ticks, strict=True):
        assert (a1, a2) == (b1, b2)  # same lines, same places
        assert pen.color().getRgb() == blend(plain_pen.color(), under).getRgb()


def test_lay_out_unseen_keeps_the_current_page_and_lays_out_the_others(qtbot):
    stack = QStackedWidget()
    qtbot.addWidget(stack)
    first, second = QLabel("first"), QWidget()
    inner = QLabel("laid out")
    QVBoxLayout(second).addWidget(inner)
    stack.addWidget(first)
    stack.addWidget(second)
    stack.resize(300, 200)
    stack.show()
    qtbot.waitExposed(stack)
    assert inner.size().toTuple() == (640, 480)  # Qt's size for a widget never laid out
    lay_out_unseen(stack, [first, second])
    assert stack.currentWidget() is first
    assert not second.isVisible()
    assert inner.width() <= 300  # its layout ran, so the first visit need not
