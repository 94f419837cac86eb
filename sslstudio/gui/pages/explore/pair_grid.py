"""The near-duplicate list: each pair side by side, never split across two rows."""

from __future__ import annotations

from PySide6.QtCore import QSize
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QListView

from sslstudio.gui.widgets.thumbnail_grid import ThumbnailGrid


class PairGrid(ThumbnailGrid):
    """A thumbnail grid with an even number of columns: the list holds pairs (a, b, a, b…)."""

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
