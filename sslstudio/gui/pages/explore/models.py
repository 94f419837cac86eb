"""Qt list models over an Explore session: any ordering or subset of the folder's images, with
a caption (prediction, similarity or score) under each thumbnail.

Thumbnails are cached by the image's row in the folder, not by its place in the list, so a
neighbour list, the outlier list and the grid share every decoded thumbnail.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSize,
    Qt,
    Slot,
)
from PySide6.QtGui import QColor, QPixmap

from sslstudio.gui.qt_models import ThumbnailCache

_Index = QModelIndex | QPersistentModelIndex
_ROOT = QModelIndex()
ROW_ROLE = Qt.ItemDataRole.UserRole  # the image's row in the folder


def top_share(closeness: float) -> str:
    """'top 0.5 %': how few images of the folder are as similar as this one."""
    top = max(0.0, 1.0 - closeness) * 100
    return f"top {top:.1f} %" if top < 10 else f"top {top:.0f} %"


def closeness_colour(closeness: float) -> QColor:
    """Green for the nearest 1 % of the folder, amber to the nearest 10 %, grey beyond."""
    if closeness >= 0.99:
        return QColor("#2b8a3e")
    if closeness >= 0.90:
        return QColor("#a15c07")
    return QColor("#868e96")


class ImageRowsModel(QAbstractListModel):
    """Rows of a session's images, each with an optional score shown beside its name.

    ``caption(row) -> str`` (set by the page) adds e.g. the predicted class; ``scores`` (one per
    listed row) show as ``0.987``.
    """

    def __init__(self, cache: ThumbnailCache, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._cache = cache
        self._rows = np.zeros(0, np.int64)
        self._scores: np.ndarray | None = None
        self._close: np.ndarray | None = None
        self._where: dict[int, list[int]] = {}
        self.session: Any = None
        self.caption: Any = None
        self.tooltip: Any = None
        self._placeholder = QPixmap(QSize(cache.size, cache.size))
        self._placeholder.fill(QColor(128, 128, 128, 60))
        cache.loaded.connect(self._on_loaded)

    def set_rows(
        self,
        rows: np.ndarray | list[int],
        scores: np.ndarray | list[float] | None = None,
        closeness: np.ndarray | list[float] | None = None,
    ) -> None:
        """``closeness`` (0-1 per row: the share of the folder less similar to a query) adds
        'top 2 %' to the caption and colours it, so near and far differ at a glance."""
        self.beginResetModel()
        self._rows = np.asarray(rows, np.int64)
        self._scores = None if scores is None else np.asarray(scores, np.float32)
        self._close = None if closeness is None else np.asarray(closeness, np.float32)
        self._where = {}
        for i, r in enumerate(self._rows.tolist()):
            self._where.setdefault(r, []).append(i)
        self.endResetModel()

    def rows(self) -> np.ndarray:
        return self._rows

    def refresh(self) -> None:
        """Captions changed (new predictions or labels)."""
        if len(self._rows):
            self.dataChanged.emit(
                self.index(0), self.index(len(self._rows) - 1), [Qt.ItemDataRole.DisplayRole]
            )

    def rowCount(self, parent: _Index = _ROOT) -> int:  # noqa: N802 (Qt API)
        return 0 if parent.isValid() else len(self._rows)

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or self.session is None or self.session.emb is None:
            return None
        row = int(self._rows[index.row()])
        emb = self.session.emb
        if role == Qt.ItemDataRole.DisplayRole:
            parts = []
            if self._close is not None:  # the rank says more than a cosine of 0.97-0.99
                parts.append(top_share(float(self._close[index.row()])))
            elif self._scores is not None:
                parts.append(f"{self._scores[index.row()]:.3f}")
            extra = self.caption(row) if self.caption else ""
            if extra:
                parts.append(extra)
            return " · ".join(parts) or Path(emb.paths[row]).name
        if role == Qt.ItemDataRole.DecorationRole:
            return self._cache.get(row, str(emb.abspath(row))) or self._placeholder
        if role == Qt.ItemDataRole.ForegroundRole and self._close is not None:
            return closeness_colour(float(self._close[index.row()]))
        if role == Qt.ItemDataRole.ToolTipRole:
            tip = self.tooltip(row) if self.tooltip else emb.paths[row]
            if self._close is not None and self._scores is not None:
                tip += (
                    f"\nsimilarity {self._scores[index.row()]:.3f}: more similar to the query "
                    f"than {self._close[index.row()]:.1%} of the folder"
                )
            return tip
        if role == ROW_ROLE:
            return row
        return None

    @Slot(int)
    def _on_loaded(self, row: int) -> None:
        for i in self._where.get(row, ()):
            idx = self.index(i)
            self.dataChanged.emit(idx, idx, [Qt.ItemDataRole.DecorationRole])
