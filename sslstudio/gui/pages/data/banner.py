"""A one-line notice across the top of a page: why a folder cannot be used, or a caution."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QWidget

ERROR, CAUTION = "error", "caution"


class Banner(QFrame):
    """Hidden until :meth:`say`; ``level`` (error or caution) picks its colours in the QSS."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("banner")
        self.label = QLabel()
        self.label.setObjectName("bannerText")
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        row = QHBoxLayout(self)
        row.setContentsMargins(12, 8, 12, 8)
        row.addWidget(self.label, 1)
        self.setVisible(False)

    @property
    def level(self) -> str:
        return str(self.property("level") or "")

    def text(self) -> str:
        return self.label.text()

    def say(self, text: str, level: str = ERROR) -> None:
        self.setProperty("level", level)
        self.style().unpolish(self)  # the level's colours come from the style sheet
        self.style().polish(self)
        self.label.setText(text)
        self.setVisible(True)

    def clear(self) -> None:
        self.label.setText("")
        self.setVisible(False)
