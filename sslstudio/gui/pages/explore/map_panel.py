"""The Map tab: the embedding map and what colours it (labels, predictions, clusters, folder
classes), PCA or UMAP. A view over :class:`ExploreSession`."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable

import numpy as np
from PySide6.QtCore import Signal, Slot
from PySide6.QtWidgets import (
    QComboBox,
    QLabel,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from sslstudio.gui import theme
from sslstudio.gui.pages.explore.embedding_map import EmbeddingMap
from sslstudio.gui.qt_models import ThumbnailCache
from sslstudio.gui.widgets.panels import hbox


def umap_installed() -> bool:
    return importlib.util.find_spec("umap") is not None


COLOUR_BY = ("Label", "Prediction", "Cluster (k-means)", "Folder class")


class MapPanel(QWidget):
    """Signals: ``pointClicked(row)``, ``selectionChanged(rows)``."""

    pointClicked = Signal(int)
    selectionChanged = Signal(object)

    def __init__(
        self,
        session,
        cache: ThumbnailCache,
        caption: Callable[[int], str],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.session = session
        self.map = EmbeddingMap()
        theme.changes().changed.connect(self.map.refresh_theme)  # light/dark switched live
        self.map.selectionChanged.connect(self.selectionChanged)
        self.map.pointClicked.connect(self.pointClicked)
        self.map.thumbnail = lambda row: cache.get(row, str(session.emb.abspath(row)))
        self.map.caption = caption
        self.colour_combo = QComboBox()
        self.colour_combo.addItems(list(COLOUR_BY))
        self.colour_combo.currentIndexChanged.connect(self.recolour)
        self.clusters_spin = QSpinBox()
        self.clusters_spin.setRange(2, 100)
        self.clusters_spin.setValue(8)
        self.clusters_spin.setPrefix("k = ")
        self.clusters_spin.valueChanged.connect(self.recolour)
        self.kind_label = QLabel("")
        self.kind_label.setObjectName("hint")
        self.umap_button = QPushButton("UMAP")
        self.umap_button.setToolTip(
            "A UMAP map (needs the umap-learn package; runs in the background)"
        )
        self.umap_button.clicked.connect(self._umap)
        # offered only where it can run: a button that answers "pip install" is no choice
        self.umap_button.setVisible(umap_installed())
        self.pca_button = QPushButton("PCA")
        self.pca_button.setToolTip("The first two principal components (instant)")
        self.pca_button.clicked.connect(lambda: session.use_pca())
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 6, 0, 0)
        lay.addLayout(
            hbox(
                QLabel("Colour by"),
                self.colour_combo,
                self.clusters_spin,
                None,
                self.kind_label,
                self.pca_button,
                self.umap_button,
            )
        )
        lay.addWidget(self.map, 1)
        session.mapChanged.connect(self._on_map)

    @Slot()
    def _on_map(self) -> None:
        self.map.set_points(self.session.coords)
        self.kind_label.setText(f"{self.session.map_kind.upper()} map")
        self.recolour()

    @Slot()
    def recolour(self) -> None:
        s = self.session
        mode = self.colour_combo.currentText()
        self.clusters_spin.setVisible(mode.startswith("Cluster"))
        if s.emb is None or s.coords is None:
            return
        cats, names = np.full(len(s.emb), -1, np.int64), []
        if mode == "Label":
            rows, y = s.labelled_rows()
            cats[rows], names = y, list(s.labels.classes)
        elif mode == "Prediction" and s.predictions is not None:
            cats, names = s.predictions.label.astype(np.int64), list(s.predictions.classes)
        elif mode.startswith("Cluster"):
            cats = s.cluster(self.clusters_spin.value())
            names = [f"cluster {i + 1}" for i in range(int(cats.max()) + 1)]
        elif mode == "Folder class" and s.emb.labels is not None:
            cats, names = s.emb.labels, list(s.emb.classes)
        self.map.set_colours(cats, names)

    def _umap(self) -> None:
        from sslstudio.core.explore.projection import umap_available

        if not umap_available():
            QMessageBox.information(
                self,
                "UMAP",
                "UMAP needs the umap-learn package:\n\n"
                "    pip install umap-learn\n\nThe PCA map needs nothing extra.",
            )
            return
        self.session.compute_umap()
