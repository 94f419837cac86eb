"""One run's (or a few runs') settings and curves, side by side: the lower half of the Runs page.

A pure view: it is handed :class:`sslstudio.gui.run.history.RunDetails` records and draws them;
it reads no files. One run is replayed from its logged events into the plots the Train page
shows live (:class:`RunPlots`); with several, the loss and kNN curves share a plot (one colour
per run) and the settings table gets a column per run with the differing rows in bold.
"""

from __future__ import annotations

from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QHBoxLayout, QHeaderView, QTreeWidget, QTreeWidgetItem, QWidget

from sslstudio.gui import theme
from sslstudio.gui.run.history import RunDetails, flatten_config
from sslstudio.gui.widgets.config_form import field_label
from sslstudio.gui.widgets.loss_plot import ThrottledPlot
from sslstudio.gui.widgets.panels import Card, hint
from sslstudio.gui.widgets.run_plots import RunPlots
from sslstudio.gui.widgets.words import setting_label as form_label

SECTIONS = (
    ("", "Run"),
    ("optim.", "Optimizer"),
    ("method_options.", "Method options"),
    ("augment.", "Augmentation"),
)
HIDDEN = ("data_root",)  # in the caption instead: a long path makes the column unreadable
LETTERS = "ABCDEFGH"
STATE_WORDS = {
    "finished": "Finished",
    "running": "Training now",
    "failed": "Failed",
    "stopped": "Stopped",
    "damaged": "Unreadable",
}


class RunDetailsView(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._last: tuple[list[RunDetails], int | None] | None = None  # redrawn on a theme switch
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(12)
        settings_card = Card("Settings")
        self.settings_tree = QTreeWidget()
        self.settings_tree.setObjectName("runSettings")
        self.settings_tree.setHeaderLabels(["Setting", "Value"])
        self.settings_tree.setUniformRowHeights(True)
        self.settings_tree.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        settings_card.add(self.settings_tree, 1)
        curves_card = Card("Curves")
        self.caption = hint("Select a run to see its settings and curves.")
        self.caption.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.run_plots = RunPlots(compact=True)  # one run: as the Train page showed it
        self.run_plots.setVisible(False)
        curves_card.add(self.run_plots, 1)
        empty = "Select a run to see its curves."
        self.loss_plot = ThrottledPlot("Loss", placeholder=empty)
        self.knn_plot = ThrottledPlot("kNN top-1")  # same colours as the loss legend
        self.knn_plot.setVisible(False)
        plots = QHBoxLayout()
        plots.setSpacing(10)
        plots.addWidget(self.loss_plot, 3)
        plots.addWidget(self.knn_plot, 2)
        curves_card.layout_.addLayout(plots, 1)
        curves_card.add(self.caption)
        row.addWidget(settings_card, 2)
        row.addWidget(curves_card, 3)

    def clear(self, message: str = "") -> None:
        self._last = None
        self.loss_plot.getPlotItem().clear()
        self.knn_plot.getPlotItem().clear()
        self.knn_plot.setVisible(False)
        self.loss_plot.set_keys([])
        self.loss_plot.refresh()
        self.loss_plot.setVisible(True)
        self.run_plots.setVisible(False)
        self.run_plots.reset()
        self.settings_tree.clear()
        self.settings_tree.setColumnCount(2)
        self.settings_tree.setHeaderLabels(["Setting", "Value"])
        self.caption.setText(message)

    def restyle(self, _theme: object = None) -> None:
        """After a light/dark switch: the plots, and the curves drawn again in the new colours."""
        theme.restyle_plot(self.loss_plot)
        theme.restyle_plot(self.knn_plot)
        self.run_plots.restyle()
        if self._last is not None:
            self.show_runs(*self._last)

    def show_runs(self, shown: list[RunDetails], selected: int | None = None) -> None:
        """Draw ``shown`` (one run, or several to compare); ``selected``: how many rows are
        selected."""
        self.clear()
        self._last = (shown, selected)
        if not shown:
            return
        if len(shown) == 1:
            self._replay(shown[0])
        else:
            self._draw_curves(shown)
        self._fill_settings(shown)
        if len(shown) == 1:
            self.caption.setText(describe(shown[0]))
        else:
            more = (
                f" (the first {len(shown)} of {selected})"
                if selected and selected > len(shown)
                else ""
            )
            names = ", ".join(f"{LETTERS[i]}: {elide(d.summary.name)}" for i, d in enumerate(shown))
            self.caption.setText(
                f"Comparing {len(shown)} runs{more} ({names}): bold lines are the trend "
                "(trailing mean), faint lines every step; the settings that differ come first."
            )

    def _replay(self, d: RunDetails) -> None:
        """The run's log through the Train page's own plots and event handling."""
        self.loss_plot.setVisible(False)
        self.run_plots.setVisible(True)
        probe = d.config.get("probe_size", 0)
        self.run_plots.replay(d.events, probe if isinstance(probe, int) else 0)

    def _draw_curves(self, shown: list[RunDetails]) -> None:
        t = theme.current()
        colors = t.curve("runs")
        many = len(shown) > 1
        keys = []
        for i, d in enumerate(shown):
            c = d.curves
            color = colors[i % len(colors)] if many else t.curve("loss_ema")
            keys.append((pg.mkColor(color).name(), LETTERS[i] if many else "trend"))
            faint = pg.mkColor(color)
            faint.setAlpha(60)
            self.loss_plot.getPlotItem().plot(c.step, c.loss, pen=pg.mkPen(faint, width=1))
            self.loss_plot.getPlotItem().plot(
                c.step,
                c.smoothed_loss(),
                pen=pg.mkPen(color, width=2),
            )
            if c.knn.size:
                self.knn_plot.setVisible(True)
                self.knn_plot.getPlotItem().plot(
                    c.knn_step,
                    c.knn,
                    pen=pg.mkPen(color, width=2),
                    symbol="o",
                    symbolSize=5,
                    symbolPen=None,
                    symbolBrush=color,
                )
        self.loss_plot.set_keys(keys)  # letters as the settings' columns: names in their tooltips
        self.loss_plot.refresh()
        self.knn_plot.refresh()

    def _fill_settings(self, shown: list[RunDetails]) -> None:
        """One column per run; with several, a 'Differences' section first and the rest folded."""
        tree = self.settings_tree
        flats = [flatten_config(d.config) for d in shown]
        keys = list(dict.fromkeys(k for f in flats for k in f if k not in HIDDEN))
        many = len(shown) > 1
        tree.setColumnCount(1 + len(shown))
        tree.setHeaderLabels(
            ["Setting"] + ([LETTERS[i] for i in range(len(shown))] if many else ["Value"])
        )
        for i, d in enumerate(shown):
            tree.headerItem().setToolTip(i + 1, d.summary.path)
        bold = QFont(tree.font())
        bold.setBold(True)
        rows = {k: [show_value(f.get(k, "–")) for f in flats] for k in keys}
        differ = [k for k in keys if len(set(rows[k])) > 1]
        sections = ([("", "Differences", differ)] if many else []) + [
            (prefix, title, [k for k in keys if (k.startswith(prefix) if prefix else "." not in k)])
            for prefix, title in SECTIONS
        ]
        for prefix, title, mine in sections:
            if not mine:
                continue
            section = QTreeWidgetItem(
                tree, [f"{title} ({len(mine)})" if title == "Differences" else title]
            )
            section.setFont(0, bold)
            for key in mine:
                item = QTreeWidgetItem(
                    section,
                    [
                        setting_label(key) if title == "Differences" else form_label(key),
                        *rows[key],
                    ],
                )
                item.setToolTip(0, key)
                if key in differ:
                    for col in range(len(shown) + 1):
                        item.setFont(col, bold)
            section.setFirstColumnSpanned(True)
            section.setExpanded(title == "Differences" or (not many and prefix != "augment."))
        if many and not differ:
            QTreeWidgetItem(tree, ["No differences in the settings"]).setFirstColumnSpanned(True)
        header = tree.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(
            0, QHeaderView.ResizeMode.Stretch
        )  # long names elide, no scroll bar
        for col in range(1, len(shown) + 1):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)


def elide(name: str, limit: int = 30) -> str:
    """Cut at the end: run folders start with their date, time and method, which tell runs apart."""
    return name if len(name) <= limit else f"{name[: limit - 1]}…"


def setting_label(key: str) -> str:
    """'method_options.temperature' -> 'Method options: Temperature'; 'image_size' ->
    'Image size'."""
    group, _, name = key.rpartition(".")
    titles = {prefix.rstrip("."): title for prefix, title in SECTIONS if prefix}
    return (
        f"{titles.get(group, field_label(group))}: {form_label(key)}" if group else form_label(key)
    )


def describe(d: RunDetails) -> str:
    """'Stopped at step 400 of 1,000 · resumes from step 400 · images: … · folder: …'."""
    r = d.summary
    total = f" of {r.total_steps:,}" if r.total_steps else ""
    parts = [f"{STATE_WORDS.get(r.state, r.state)} at step {r.steps_done:,}{total}"]
    if r.message:
        parts.append(r.message)
    if r.resumable:
        parts.append(
            f"resumes from step {r.checkpoint_step:,}"
            if r.checkpoint_step
            else "resumes from step 0"
        )
    if d.checkpoints:
        parts.append(f"{len(d.checkpoints)} checkpoint{'s' if len(d.checkpoints) != 1 else ''}")
    if d.config.get("data_root"):
        parts.append(f"images: {d.config['data_root']}")
    parts.append(f"folder: {r.path}")
    return " · ".join(parts)


def show_value(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:,.6g}" if abs(v) >= 1000 else f"{v:.6g}"
    if isinstance(v, dict):
        return "–" if not v else ", ".join(f"{k}={show_value(x)}" for k, x in v.items())
    return str(v) if v != "" else "–"
