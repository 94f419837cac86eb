"""Step 6, Explore: what the model learned — neighbours, the embedding map, outliers and
near-duplicates — and "label a few, classify the rest".

A thin view over :class:`ExploreSession`; every computation is in core.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, Slot
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from sslstudio.gui.pages.explore.label_panel import LabelPanel
from sslstudio.gui.pages.explore.map_panel import MapPanel
from sslstudio.gui.pages.explore.models import ROW_ROLE, ImageRowsModel
from sslstudio.gui.pages.explore.neighbour_browser import NeighbourBrowser
from sslstudio.gui.pages.explore.pair_grid import PairGrid, duplicates_text
from sslstudio.gui.pages.explore.session import ExploreSession
from sslstudio.gui.qt_models import ThumbnailCache
from sslstudio.gui.run.history import find_runs
from sslstudio.gui.settings import Settings
from sslstudio.gui.widgets.panels import Card, Page, hbox, hint
from sslstudio.gui.widgets.thumbnail_grid import ThumbnailGrid
from sslstudio.paths import runs_dir


class ExplorePage(Page):
    def __init__(self, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(
            "Explore",
            "What the model learned: click an image to see its nearest neighbours, look at the map "
            "of "
            "the whole folder, find outliers and near-duplicates — then label a few images and let "
            "a "
            "classifier on the learned features label the rest.",
            parent,
        )
        self.settings = settings
        self.session = ExploreSession(self)
        self.cache = ThumbnailCache(size=88, parent=self)
        self._selected: list[int] = []
        self.body.addLayout(self._build_run_bar())
        self.tabs = QTabWidget()
        self.tabs.addTab(self._build_images_tab(), "Images")
        self.tabs.addTab(self._build_map_tab(), "Map")
        self.tabs.addTab(self._build_outliers_tab(), "Outliers")
        self.tabs.addTab(self._build_duplicates_tab(), "Duplicates")
        split = QSplitter(Qt.Orientation.Horizontal)
        split.setChildrenCollapsible(False)
        split.addWidget(self.tabs)
        split.addWidget(self._build_right())
        split.setSizes([640, 520])
        self.body.addWidget(split, 1)
        self._connect_session()
        self._set_enabled(False)

    # -- construction ------------------------------------------------------------------------

    def _build_run_bar(self) -> QHBoxLayout:
        """The run chooser, its progress and the page's status line."""
        self.run_combo = QComboBox()
        self.run_combo.setMinimumWidth(220)
        self.run_combo.setToolTip("The run whose latest good checkpoint embeds the images")
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.clicked.connect(self.refresh_runs)
        self.open_button = QPushButton("Explore")
        self.open_button.setObjectName("primary")
        self.open_button.clicked.connect(self._open_chosen)
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(220)
        self.progress.setVisible(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setVisible(False)
        self.cancel_button.clicked.connect(lambda: self.session.cancel())
        self.status = QLabel("Choose a trained run.")
        self.status.setObjectName("hint")
        self.status.setWordWrap(True)  # a long status wraps instead of widening the page
        row = hbox(
            QLabel("Run"),
            self.run_combo,
            self.refresh_button,
            self.open_button,
            self.progress,
            self.cancel_button,
        )
        row.addWidget(self.status, 1)
        return row

    def _build_images_tab(self) -> QWidget:
        self.all_model = self._rows_model()
        self.all_grid = self._grid(self.all_model)
        self.sort_combo = QComboBox()
        self.sort_combo.addItems(["Folder order", "Least certain first", "By prediction"])
        self.sort_combo.currentIndexChanged.connect(self._fill_all)
        images = QWidget()
        lay = QVBoxLayout(images)
        lay.setContentsMargins(0, 6, 0, 0)
        lay.addLayout(hbox(QLabel("Order"), self.sort_combo, None))
        lay.addWidget(self.all_grid, 1)
        return images

    def _build_map_tab(self) -> QWidget:
        self.map_panel = MapPanel(self.session, self.cache, self._tooltip)
        self.map = self.map_panel.map
        self.map_panel.pointClicked.connect(self.query_row)
        self.map_panel.selectionChanged.connect(self._on_map_selection)
        self.colour_combo = self.map_panel.colour_combo
        return self.map_panel

    def _build_outliers_tab(self) -> QWidget:
        self.outlier_model = self._rows_model()
        self.outlier_button = QPushButton("Find outliers")
        self.outlier_button.clicked.connect(lambda: self.session.find_outliers(200))
        outliers = QWidget()
        lay = QVBoxLayout(outliers)
        lay.setContentsMargins(0, 6, 0, 0)
        lay.addLayout(
            hbox(
                self.outlier_button,
                hint(
                    "Images least like their 10 nearest neighbours (mean similarity, lowest first)."
                ),
                None,
            )
        )
        lay.addWidget(self._grid(self.outlier_model), 1)
        return outliers

    def _build_duplicates_tab(self) -> QWidget:
        self.dup_model = self._rows_model()
        self.dup_threshold = QDoubleSpinBox()
        self.dup_threshold.setRange(0.5, 1.0)
        self.dup_threshold.setSingleStep(0.005)
        self.dup_threshold.setDecimals(3)
        self.dup_threshold.setValue(0.99)
        self.dup_button = QPushButton("Find near-duplicates")
        self.dup_button.clicked.connect(
            lambda: self.session.find_duplicates(self.dup_threshold.value())
        )
        dups = QWidget()
        lay = QVBoxLayout(dups)
        lay.setContentsMargins(0, 6, 0, 0)
        lay.addLayout(
            hbox(
                QLabel("Similarity ≥"),
                self.dup_threshold,
                self.dup_button,
                None,
            )
        )
        self.dup_count = hint("Pairs side by side, most similar first.")
        lay.addWidget(self.dup_count)
        self.dup_grid = self._grid(self.dup_model, PairGrid)
        lay.addWidget(self.dup_grid, 1)
        return dups

    def _build_right(self) -> QSplitter:
        """Nearest neighbours over labelling."""
        self.browser = NeighbourBrowser(self.cache)
        self.browser.model.session = self.session
        self.browser.model.caption = None
        self.browser.queryRequested.connect(self.query_row)
        self.browser.fileQueryRequested.connect(self.query_file)
        self.browser.settingsChanged.connect(self._requery)
        self.browser.grid.selectionModel().selectionChanged.connect(
            lambda *_: self._take_selection(self.browser.grid)
        )
        neighbours = Card("Nearest neighbours")
        neighbours.add(self.browser, 1)

        self.labels = LabelPanel(self.session, lambda: self._selected)
        self.labels.status.connect(self.status.setText)
        labels = Card("Label a few, classify the rest")
        labels.add(self.labels)

        right = QSplitter(Qt.Orientation.Vertical)
        right.setChildrenCollapsible(False)
        right.addWidget(neighbours)
        right.addWidget(labels)
        right.setSizes([480, 260])
        return right

    def _connect_session(self) -> None:
        s = self.session
        s.progress.connect(self._on_progress)
        s.busy.connect(self._on_busy)
        s.loaded.connect(self._on_loaded)
        s.labelsChanged.connect(self._on_labels)
        s.predictionsChanged.connect(self._on_predictions)
        s.queryReady.connect(self._on_file_query)
        s.listReady.connect(self._on_list)
        s.failed.connect(self._on_failed)

    # -- construction helpers ----------------------------------------------------------------

    def _rows_model(self) -> ImageRowsModel:
        model = ImageRowsModel(self.cache, self)
        model.session = self.session
        model.caption = self._caption
        model.tooltip = self._tooltip
        return model

    def _grid(
        self, model: ImageRowsModel, kind: type[ThumbnailGrid] = ThumbnailGrid
    ) -> ThumbnailGrid:
        grid = kind(model, icon_size=88)  # type: ignore[arg-type]
        grid.clicked.connect(lambda idx: self.query_row(int(idx.data(ROW_ROLE))))
        grid.selectionModel().selectionChanged.connect(lambda *_: self._take_selection(grid))
        return grid

    # -- runs ----------------------------------------------------------------------------------

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 (Qt override)
        super().showEvent(event)
        if self.run_combo.count() == 0:
            self.refresh_runs()

    def refresh_runs(self) -> None:
        current = self.run_combo.currentData()
        extra = tuple(f for f in self.settings.get("opened_runs", []) if isinstance(f, str))
        runs = [r for r in find_runs(runs_dir(), extra) if (r / "checkpoints").is_dir()]
        runs.sort(key=lambda p: p.stat().st_mtime, reverse=True)
        self.run_combo.clear()
        for r in runs:
            self.run_combo.addItem(r.name, str(r))
        if current:
            i = self.run_combo.findData(current)
            if i >= 0:
                self.run_combo.setCurrentIndex(i)
        self.open_button.setEnabled(bool(runs))
        if not runs:
            self.status.setText("No trained runs yet: train one on the Train page first.")

    def open_run(self, run: str | Path) -> None:
        """Embed (or reuse the stored embeddings of) ``run`` and show it."""
        run = str(run)
        if self.run_combo.findData(run) < 0:
            self.run_combo.addItem(Path(run).name, run)
        self.run_combo.setCurrentIndex(self.run_combo.findData(run))
        self.browser.clear()
        self._set_enabled(False)
        self.session.open_run(run)

    def _open_chosen(self) -> None:
        run = self.run_combo.currentData()
        if run:
            self.open_run(run)

    # -- session answers -------------------------------------------------------------------------

    @Slot(str, int, int)
    def _on_progress(self, stage: str, done: int, total: int) -> None:
        self.progress.setRange(0, max(total, 0))
        self.progress.setValue(done if total > 0 else 0)
        self.progress.setFormat(f"{stage} %v/%m" if total > 0 else stage)

    @Slot(str)
    def _on_busy(self, text: str) -> None:
        self.progress.setVisible(bool(text))
        self.cancel_button.setVisible(bool(text))
        if text:
            self.status.setText(text)
        elif self.status.text().endswith("…"):  # the work is done: back to what is on screen
            self.status.setText(self._summary())

    @Slot()
    def _on_loaded(self) -> None:
        emb = self.session.emb
        self.cache.reset()
        self.status.setText(self._summary())
        self._set_enabled(True)
        self._fill_all()
        self._on_labels()
        if len(emb):
            self.query_row(0)

    def _summary(self) -> str:
        emb = self.session.emb
        if emb is None:
            return "Choose a trained run."
        return (
            f"{len(emb)} images · {emb.dim}-d features · {self.session.index.kind} search · "
            f"checkpoint {Path(emb.checkpoint).name}"
        )

    @Slot()
    def _on_labels(self) -> None:
        self._refresh_captions()
        if self.colour_combo.currentText() == "Label":
            self.map_panel.recolour()

    @Slot()
    def _on_predictions(self) -> None:
        self._refresh_captions()
        self.colour_combo.setCurrentText("Prediction")
        self.map_panel.recolour()
        if self.sort_combo.currentIndex() != 0:
            self._fill_all()

    @Slot(object, str)
    def _on_file_query(self, vector: Any, path: str) -> None:
        self.browser.push(-1, path)
        hits = self.session.neighbours(vector, self.browser.k, -1, self.browser.group_rule())
        near = self.session.closeness(vector, [sim for _, sim in hits])
        caption = f"{Path(path).name} (outside the folder)"
        self.browser.show_results(-1, path, caption, hits, near)
        self.map.set_highlight([r for r, _ in hits])

    @Slot(str, object, object)
    def _on_list(self, kind: str, rows: Any, scores: Any) -> None:
        model = self.outlier_model if kind == "outliers" else self.dup_model
        model.set_rows(rows, scores)
        if kind == "duplicates":
            self.dup_count.setText(
                duplicates_text(
                    self.session.pairs_found, len(rows) // 2, self.dup_threshold.value()
                )
            )
            self.tabs.setTabText(3, f"Duplicates ({self.session.pairs_found:,})")
            self.dup_grid.scrollToTop()

    @Slot(str)
    def _on_failed(self, message: str) -> None:
        self.status.setText(message)
        if self.session.emb is None:
            QMessageBox.warning(self, "Explore", message)

    # -- neighbours -------------------------------------------------------------------------------

    @Slot(int)
    def query_row(self, row: int) -> None:
        emb = self.session.emb
        if emb is None or not 0 <= row < len(emb):
            return
        self.browser.push(row, str(emb.abspath(row)))
        hits = self.session.neighbours(
            emb.unit()[row], self.browser.k, row, self.browser.group_rule()
        )
        near = self.session.closeness(emb.unit()[row], [sim for _, sim in hits], row)
        self.browser.show_results(row, str(emb.abspath(row)), self._tooltip(row), hits, near)
        self.map.set_highlight([row, *[r for r, _ in hits]])

    @Slot(str)
    def query_file(self, path: str) -> None:
        if self.session.emb is not None:
            self.session.query_file(path)

    def _requery(self) -> None:
        cur = self.browser.current()
        if cur is None:
            return
        if cur[0] >= 0:
            self.query_row(cur[0])
        else:
            self.query_file(cur[1])

    # -- map --------------------------------------------------------------------------------------

    @Slot(object)
    def _on_map_selection(self, rows: Any) -> None:
        self._selected = [int(r) for r in rows]
        self.status.setText(f"{len(self._selected)} image(s) selected on the map")
        self.all_model.set_rows(np.asarray(self._selected, np.int64))
        self.sort_combo.blockSignals(True)
        self.sort_combo.setCurrentIndex(0)
        self.sort_combo.blockSignals(False)
        self.tabs.setTabText(0, f"Images ({len(self._selected)} selected)")

    def _take_selection(self, grid: ThumbnailGrid) -> None:
        self._selected = [int(i.data(ROW_ROLE)) for i in grid.selectionModel().selectedIndexes()]

    # -- captions -------------------------------------------------------------------------------

    def _caption(self, row: int) -> str:
        s = self.session
        user = s.labels.assigned.get(s.emb.paths[row]) if s.labels is not None else None
        if user:
            return f"✓ {user}"
        if s.predictions is not None:
            pred = s.predictions  # the share first: a narrow cell elides the class, not the share
            return f"{pred.confidence[row]:.0%} {pred.classes[pred.label[row]]}"
        return Path(s.emb.paths[row]).name

    def _tooltip(self, row: int) -> str:
        s = self.session
        text = s.emb.paths[row]
        user = s.labels.assigned.get(s.emb.paths[row]) if s.labels is not None else None
        if user:
            text += f"\nlabel: {user}"
        if s.predictions is not None:
            text += (
                f"\npredicted: {s.predictions.classes[s.predictions.label[row]]} "
                f"({s.predictions.confidence[row]:.0%})"
            )
        return text

    def _refresh_captions(self) -> None:
        for model in (self.all_model, self.outlier_model, self.dup_model, self.browser.model):
            model.refresh()

    def _fill_all(self) -> None:
        s = self.session
        if s.emb is None:
            return
        self.tabs.setTabText(0, "Images")
        order = self.sort_combo.currentIndex()
        if order == 1 and s.predictions is not None:
            self.all_model.set_rows(s.suggestions(len(s.emb)))
        elif order == 2 and s.predictions is not None:
            self.all_model.set_rows(np.lexsort((-s.predictions.confidence, s.predictions.label)))
        else:
            self.all_model.set_rows(np.arange(len(s.emb)))
        self.all_grid.scrollToTop()  # a new order is read from its start

    def _set_enabled(self, on: bool) -> None:
        for w in (self.tabs, self.browser, self.labels):
            w.setEnabled(on)

    def shutdown(self) -> None:
        self.labels.stop()  # no retraining started after this
        self.session.shutdown()
        self.cache.shutdown()
