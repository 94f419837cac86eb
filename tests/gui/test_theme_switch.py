"""Light and dark follow the system live: every plot and page re-coloured, no restart."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QPalette

from sslstudio.gui import theme


def _colour(c) -> str:  # noqa: ANN001
    return pg.mkColor(c).name()


def test_a_system_switch_recolours_plots_and_pages(window, themed_app, qtbot) -> None:
    light, dark = theme.load_tokens("light"), theme.load_tokens("dark")
    train = window.train_page
    curve = train.loss_plot.getPlotItem().listDataItems()[1]  # the smoothed loss
    assert _colour(curve.opts["pen"].color()) == _colour(light["curves"]["loss_ema"])
    switches: list[object] = []
    theme.changes().changed.connect(switches.append)
    try:
        themed_app.styleHints().colorSchemeChanged.emit(Qt.ColorScheme.Dark)  # as the system does
        assert theme.current().name == "dark" and len(switches) == 1
        assert themed_app.palette().color(QPalette.ColorRole.Window).lightness() < 128
        for plot in train.plots:
            assert _colour(plot.backgroundBrush().color()) == _colour(dark["plot_bg"])
        assert _colour(curve.opts["pen"].color()) == _colour(dark["curves"]["loss_ema"])
        axis = train.loss_plot.getPlotItem().getAxis("left")
        assert _colour(axis.textPen().color()) == _colour(dark["plot_fg"])
        schedule = window.method_page.schedules.schedule_curve
        assert _colour(schedule.opts["pen"].color()) == _colour(dark["curves"]["lr"])
        themed_app.styleHints().colorSchemeChanged.emit(Qt.ColorScheme.Unknown)  # no answer: kept
        assert theme.current().name == "dark" and len(switches) == 1
    finally:
        themed_app.styleHints().colorSchemeChanged.emit(Qt.ColorScheme.Light)
        theme.changes().changed.disconnect(switches.append)
    assert theme.current().name == "light"
    assert _colour(curve.opts["pen"].color()) == _colour(light["curves"]["loss_ema"])
