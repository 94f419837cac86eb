"""The near-duplicate list: each pair side by side, never split across two rows."""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRect, QSize
from PySide6.QtGui import QColor, QPainter, QPalette, QResizeEvent
from PySide6.QtWidgets import QListView, QStyledItemDelegate, QStyleOptionViewItem, QWidget

from sslstudio.gui.qt_models import ImageListModel
from sslstudio.gui.widgets.thumbnail_grid import ThumbnailGrid

GAP = 12  # px of plain background between one pair and the next


def pair_band(cell: QRect, row: int, gap: int = GAP) -> QRect:
    """The part of ``cell`` the pair's shared band covers: a pair's two cells join in the
    middle; half the gap is left on each outer side, so pairs stand apart."""
    half = gap // 2
    if row % 2 == 0:  # the first of its pair: its left edge is the pair's outer edge
        return cell.adjusted(half, 2, 0, -2)
    return cell.adjusted(0, 2, -half, -2)


class PairDelegate(QStyledItemDelegate):
    """Draws one band behind the two images of a pair (no line between them), then the
    thumbnail as usual."""

    def paint(
        self,
        painter: QPainter,
        option: QStyleOptionViewItem,
        index: QModelIndex | QPersistentModelIndex,
    ) -> None:
        tint = QColor(option.palette.color(QPalette.ColorRole.Highlight))
        tint.setAlpha(36)  # a wash of the accent colour: visible in light and dark themes
        painter.fillRect(pair_band(option.rect, index.row()), tint)
        super().paint(painter, option, index)


class PairGrid(ThumbnailGrid):
    """A thumbnail grid with an even number of columns: the list holds pairs (a, b, a, b…),
    each pair on one shared band with a gap before the next."""

    def __init__(
        self, model: ImageListModel, icon_size: int = 96, parent: QWidget | None = None
    ) -> None:
        super().__init__(model, icon_size, parent)
        self._cell = QSize(self._cell.width() + GAP // 2, self._cell.height())
        self.setGridSize(self._cell)
        self.setItemDelegate(PairDelegate(self))

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 (Qt override)
        width = self.viewport().width() - 2
        cols = max(2, width // self._cell.width() // 2 * 2)
        cell = QSize(max(1, width // cols), self._cell.height())
        if cell != self.gridSize():
            self.setGridSize(cell)
        QListView.resizeEvent(self, event)  # not the parent's: it would size for any count

    def columns(self) -> int:
        return max(1, (self.viewport().width() - 2) // max(1, self.gridSize().width()))


def duplicates_text(found: int, shown: int, threshold: float) -> str:
    """'12 pairs at similarity ≥ 0.990, side by side' or, for more than are shown, how many."""
    if not found:
        return f"No pairs at similarity ≥ {threshold:.3f}: lower it to look further."
    if shown < found:
        return (
            f"{found:,} pairs at similarity ≥ {threshold:.3f}: the {shown:,} most similar are "
            "shown, side by side. Raise the threshold for fewer."
        )
    return (
        f"{found:,} pair{'' if found == 1 else 's'} at similarity ≥ {threshold:.3f}, side by side."
    )
