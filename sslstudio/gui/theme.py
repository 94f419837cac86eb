"""Look and feel: Fusion + a palette + one QSS template filled from a light or dark token file.

The dark variant is chosen when the system says so (Qt's colour scheme hint, else the
palette's window lightness) and follows it live: :func:`follow_system` re-applies the theme
when the system switches, and :func:`changes` tells the windows, which restyle their plots
(:func:`restyle_plot`: background, axes, titles, and every curve drawn with :func:`pen` from a
token). Plot colours come from the same token file, so curves match.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QColor, QGuiApplication, QIcon, QPalette
from PySide6.QtWidgets import QApplication

from sslstudio.paths import resource_path


@dataclass(frozen=True)
class Theme:
    name: str  # "light" | "dark"
    tokens: dict[str, Any] = field(default_factory=dict)

    def color(self, key: str) -> str:
        return str(self.tokens[key])

    def curve(self, key: str) -> Any:
        return self.tokens["curves"][key]


_current: Theme | None = None


class _Changes(QObject):
    changed = Signal(object)  # the new Theme, after it has been applied


_changes: _Changes | None = None


def changes() -> _Changes:
    """``changes().changed`` is emitted whenever :func:`apply_theme` switches light and dark."""
    global _changes
    if _changes is None:
        _changes = _Changes()
    return _changes


def follow_system(app: QApplication) -> None:
    """Switch light/dark when the system does (Qt 6.5+ reports it; otherwise nothing happens)."""

    if app.property("sslstudio_follows_system"):
        return  # once per application (make_app may run again on the same one, as in tests)
    app.setProperty("sslstudio_follows_system", True)

    def switched(scheme: Qt.ColorScheme) -> None:
        if scheme in (Qt.ColorScheme.Dark, Qt.ColorScheme.Light):
            apply_theme(app, dark=scheme == Qt.ColorScheme.Dark)

    app.styleHints().colorSchemeChanged.connect(switched)


def system_is_dark(app: QGuiApplication) -> bool:
    scheme = app.styleHints().colorScheme()
    if scheme == Qt.ColorScheme.Dark:
        return True
    if scheme == Qt.ColorScheme.Light:
        return False
    return app.palette().color(QPalette.ColorRole.Window).lightness() < 128


@lru_cache(maxsize=2)
def load_tokens(name: str) -> dict[str, Any]:
    return json.loads(resource_path("styles", f"{name}.json").read_text(encoding="utf-8"))


def stylesheet(tokens: dict[str, Any]) -> str:
    qss = resource_path("styles", "sslstudio.qss").read_text(encoding="utf-8")
    # longest names first, so @accent does not eat the start of @accent_hover
    for key in sorted((k for k, v in tokens.items() if isinstance(v, str)), key=len, reverse=True):
        qss = qss.replace(f"@{key}", tokens[key])
    return qss


def apply_theme(app: QApplication, dark: bool | None = None) -> Theme:
    """Style ``app``; ``dark=None`` follows the system. Returns the theme for plot colours."""
    global _current
    if dark is None:
        dark = system_is_dark(app)
    name = "dark" if dark else "light"
    switched = _current is not None and _current.name != name
    tokens = load_tokens(name)
    app.setStyle("Fusion")
    app.setPalette(_palette(tokens))
    app.setStyleSheet(stylesheet(tokens))
    _current = Theme(name, tokens)
    _configure_plots(_current)
    if switched:
        changes().changed.emit(_current)
    return _current


def pen(key: str, width: float = 2.0, dash: bool = False) -> Any:
    """A pen in the curve colour ``key``; curves drawn with it are re-coloured on a switch."""
    import pyqtgraph as pg

    style = Qt.PenStyle.DashLine if dash else Qt.PenStyle.SolidLine
    p = pg.mkPen(current().curve(key), width=width, style=style)
    p.theme_key = (key, width, dash)  # type: ignore[attr-defined]  # read back by restyle_plot
    return p


def restyle_plot(widget: Any) -> None:
    """Background, axes, title, legend and token-coloured curves of a pyqtgraph PlotWidget."""
    import pyqtgraph as pg

    t = current()
    fg = t.color("plot_fg")
    widget.setBackground(t.color("plot_bg"))
    item = widget.getPlotItem()
    for name in ("left", "bottom", "right", "top"):
        axis = item.getAxis(name)
        axis.setPen(fg)
        axis.setTextPen(fg)
    if item.titleLabel.text:
        item.titleLabel.setText(item.titleLabel.text, color=fg)
    if item.legend is not None:
        for _, label in item.legend.items:
            label.setText(label.text, color=fg)
    for curve in item.listDataItems():
        spec = getattr(curve, "theme_key", None)
        if spec is None:
            continue
        key, width, dash = spec
        curve.setPen(pen(key, width, dash))
        if curve.opts.get("symbol") is not None:
            curve.setSymbolBrush(pg.mkBrush(t.curve(key)))


def tag(curve: Any, pen_used: Any) -> Any:
    """Remember on ``curve`` which token its pen came from (pyqtgraph copies pens)."""
    spec = getattr(pen_used, "theme_key", None)
    if spec is not None:
        curve.theme_key = spec
    return curve


def current() -> Theme:
    """The applied theme (light before :func:`apply_theme` ran, e.g. in a bare widget test)."""
    return _current or Theme("light", load_tokens("light"))


def app_icon() -> QIcon:
    return QIcon(str(resource_path("icons", "sslstudio.svg")))


def _palette(t: dict[str, Any]) -> QPalette:
    # Fusion draws inputs from the palette: setting it keeps spin boxes and combos on-theme
    # without restyling their sub-controls in QSS.
    p = QPalette()
    role = QPalette.ColorRole
    for r, key in (
        (role.Window, "window"),
        (role.Base, "input"),
        (role.AlternateBase, "sidebar"),
        (role.Button, "panel"),
        (role.Text, "text"),
        (role.WindowText, "text"),
        (role.ButtonText, "text"),
        (role.ToolTipBase, "panel"),
        (role.ToolTipText, "text"),
        (role.Highlight, "accent"),
        (role.HighlightedText, "accent_text"),
        (role.PlaceholderText, "muted"),
        (role.Link, "accent"),
    ):
        p.setColor(r, QColor(t[key]))
    for r in (role.Text, role.WindowText, role.ButtonText):
        p.setColor(QPalette.ColorGroup.Disabled, r, QColor(t["muted"]))
    return p


def _configure_plots(theme: Theme) -> None:
    import pyqtgraph as pg

    pg.setConfigOptions(
        background=theme.color("plot_bg"), foreground=theme.color("plot_fg"), antialias=True
    )
