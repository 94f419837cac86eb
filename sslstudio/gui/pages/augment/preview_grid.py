"""A grid of images that fills its space: rows of (original, view 1..n), scaled to fit, square
cells."""

from __future__ import annotations

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QImage, QPainter, QPaintEvent, QPalette
from PySide6.QtWidgets import QSizePolicy, QWidget

GAP = 8
HEADER = 22
MAX_CELL = 190  # beyond this the views are upscaled mush; leave the space empty instead


class PreviewGrid(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("previewGrid")
        self._rows: list[list[QImage]] = []
        self._headers: list[str] = []
        self.message = ""
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(QSize(360, 240))

    def set_images(self, rows: list[list[QImage]], headers: list[str]) -> None:
        self._rows, self._headers = rows, headers
        self.message = ""
        self.update()

    def set_message(self, text: str) -> None:
        """Shown instead of images (loading, no folder yet)."""
        self.message = text
        self._rows = []
        self.update()

    @property
    def image_count(self) -> int:
        return sum(len(r) for r in self._rows)

    def images(self) -> list[list[QImage]]:
        return self._rows

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt override)
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        muted = self.palette().color(QPalette.ColorRole.PlaceholderText)
        if not self._rows:
            p.setPen(muted)
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, self.message)
            return
        ncols = max(len(r) for r in self._rows)
        nrows = len(self._rows)
        pad = 2  # room for the outline around the originals
        cell = min(
            (self.width() - 2 * pad - GAP * (ncols - 1)) / ncols,
            (self.height() - 2 * pad - HEADER - GAP * (nrows - 1)) / nrows,
            MAX_CELL,
        )
        cell = max(cell, 8.0)
        total_w = ncols * cell + GAP * (ncols - 1)
        total_h = HEADER + nrows * cell + GAP * (nrows - 1)
        x0 = (self.width() - total_w) / 2
        y0 = max(0.0, (self.height() - total_h) / 2)  # centred: the slack is split above and below
        p.setPen(muted)
        for c, text in enumerate(self._headers[:ncols]):
            r = QRectF(x0 + c * (cell + GAP), y0, cell, HEADER - 4)
            p.drawText(r, Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignBottom, text)
        for ri, row in enumerate(self._rows):
            y = y0 + HEADER + ri * (cell + GAP)
            for c, img in enumerate(row):
                target = QRectF(x0 + c * (cell + GAP), y, cell, cell)
                p.drawImage(target, img)
                if c == 0:  # set the original apart from the random views
                    p.setPen(self.palette().color(QPalette.ColorRole.Highlight))
                    p.drawRect(target.adjusted(-1.5, -1.5, 1.5, 1.5))
