"""A grid of image thumbnails that stays smooth for 100k items.

``uniformItemSizes`` lets the view lay out every item from one size (no per-item size query),
static movement skips drag bookkeeping, and batched layout keeps the event loop responsive
while a huge folder is laid out. Only painted items ask the model for their thumbnail.
"""

from __future__ import annotations

from PySide6.QtCore import QSize
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QAbstractItemView, QListView, QWidget

from sslstudio.gui.qt_models import ImageListModel


class ThumbnailGrid(QListView):
    def __init__(
        self, model: ImageListModel, icon_size: int = 96, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("thumbnails")
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setMovement(QListView.Movement.Static)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setLayoutMode(QListView.LayoutMode.Batched)
        self.setBatchSize(5000)
        self.setUniformItemSizes(True)
        self.setWrapping(True)
        self.setWordWrap(False)
        self.setIconSize(QSize(icon_size, icon_size))
        # room for the label under the icon; one size so every row lines up
        self._cell = QSize(icon_size + 22, icon_size + 30)
        self.setGridSize(self._cell)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.verticalScrollBar().setSingleStep(24)
        self.setModel(model)

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 (Qt override)
        # share the leftover width among the columns, so the grid fills the view edge to edge
        width = self.viewport().width() - 2
        cols = max(1, width // self._cell.width())
        cell = QSize(max(self._cell.width(), width // cols), self._cell.height())
        if cell != self.gridSize():
            self.setGridSize(cell)
        super().resizeEvent(event)
