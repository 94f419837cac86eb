"""The sidebar: the app's name over the list of steps, upcoming ones shown but not clickable."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPixmap
from PySide6.QtWidgets import QLabel, QListWidget, QListWidgetItem, QVBoxLayout, QWidget

from sslstudio.gui import theme

ROW_HEIGHT = 40


def step_icon(
    number: int | None, color: str, selected_color: str = "#ffffff", size: int = 22
) -> QIcon:
    """A numbered ring (empty for steps that are not there yet), drawn light when selected."""
    icon = QIcon()
    icon.addPixmap(_ring(number, color, size))
    icon.addPixmap(_ring(number, selected_color, size), QIcon.Mode.Selected)
    return icon


def _ring(number: int | None, color: str, size: int) -> QPixmap:
    pm = QPixmap(QSize(size, size) * 2)  # drawn at 2x: crisp on high-DPI screens
    pm.setDevicePixelRatio(2)
    pm.fill(Qt.GlobalColor.transparent)
    p = QPainter(pm)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    p.setPen(QColor(color))
    p.drawEllipse(1, 1, size - 2, size - 2)
    if number is not None:
        font = p.font()
        font.setPixelSize(int(size * 0.55))
        font.setBold(True)
        p.setFont(font)
        p.drawText(QRect(0, 0, size, size), Qt.AlignmentFlag.AlignCenter, str(number))
    p.end()
    return pm


class Sidebar(QWidget):
    """``steps`` is the list: row i is step i; the ``coming`` rows follow, disabled."""

    def __init__(
        self, steps: Sequence[str], coming: Sequence[str], parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setObjectName("sidebar")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.setFixedWidth(196)
        col = QVBoxLayout(self)
        col.setContentsMargins(0, 0, 0, 0)
        col.setSpacing(0)
        head = QLabel("SSL Studio")
        head.setObjectName("appName")
        head.setContentsMargins(10, 16, 10, 0)
        col.addWidget(head)
        self.steps = QListWidget()
        self.steps.setObjectName("steps")
        self.steps.setIconSize(QSize(22, 22))
        self.steps.setSpacing(2)
        t = theme.current()
        for i, name in enumerate(steps, start=1):
            item = QListWidgetItem(step_icon(i, t.color("accent"), t.color("accent_text")), name)
            item.setSizeHint(QSize(0, ROW_HEIGHT))
            self.steps.addItem(item)
        for name in coming:
            item = QListWidgetItem(step_icon(None, t.color("muted")), f"{name}\ncoming soon")
            item.setSizeHint(QSize(0, ROW_HEIGHT + 6))
            item.setFlags(
                Qt.ItemFlag.NoItemFlags
            )  # visible, so the road ahead is clear; not clickable
            item.setToolTip(f"{name}: coming soon")
            self.steps.addItem(item)
        col.addWidget(self.steps, 1)
