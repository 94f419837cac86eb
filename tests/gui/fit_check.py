"""Text that does not fit: visible labels and buttons whose text is wider (or, word-wrapped,
taller) than the room the layout gave them."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractSpinBox,
    QCheckBox,
    QComboBox,
    QLabel,
    QLineEdit,
    QRadioButton,
    QWidget,
)

SLACK = 1  # px: rounding in the text engine


def _plain(text: str) -> str:
    return text.replace("&&", "\0").replace("&", "").replace("\0", "&")


def _label_problem(label: QLabel) -> str:
    text = label.text()
    if not text or label.pixmap() is not None and not label.pixmap().isNull():
        return ""
    room = label.contentsRect()
    room_w = room.width() - 2 * max(label.margin(), 0) - max(label.indent(), 0)
    if label.wordWrap():
        need = label.heightForWidth(label.width())
        if need > label.height() + SLACK:
            return f"wrapped text needs {need} px of height, has {label.height()}"
        return ""
    rich = label.textFormat() == Qt.TextFormat.RichText or (
        label.textFormat() == Qt.TextFormat.AutoText and "<" in text and ">" in text
    )
    need = label.minimumSizeHint().width() if rich else label.fontMetrics().horizontalAdvance(text)
    if rich:
        room_w = label.width()
    if need > room_w + SLACK:
        return f"needs {need} px, has {room_w}"
    tall = label.fontMetrics().height()
    if not rich and tall > room.height() + SLACK:
        return f"needs {tall} px of height, has {room.height()}"
    return ""


def _button_problem(button: QAbstractButton) -> str:
    text = _plain(button.text())
    if not text:
        return ""
    if isinstance(button, (QCheckBox, QRadioButton)):
        need, has = button.sizeHint().width(), button.width()
    else:
        icon = button.iconSize().width() + 4 if not button.icon().isNull() else 0
        need = button.fontMetrics().horizontalAdvance(text) + icon
        has = button.contentsRect().width() - 12  # the style's padding either side of the text
    return f"needs {need} px, has {has}" if need > has + SLACK else ""


def clipped(root: QWidget) -> list[str]:
    """One line per visible label or button under ``root`` whose text does not fit."""
    found = []
    for w in root.findChildren(QWidget):
        if not w.isVisible() or w.width() <= 0:
            continue
        if isinstance(w.parentWidget(), (QAbstractSpinBox, QComboBox)):
            continue  # the line edit inside a spin box: the box itself is checked
        if isinstance(w, QLabel):
            problem = _label_problem(w)
        elif isinstance(w, QAbstractButton):
            problem = _button_problem(w)
        elif isinstance(w, (QAbstractSpinBox, QComboBox, QLineEdit)):
            need = w.minimumSizeHint().height()
            problem = f"squashed to {w.height()} px high, needs {need}" if w.height() < need else ""
        else:
            continue
        if problem:
            name = w.objectName() or type(w).__name__
            text = w.text() if isinstance(w, (QLabel, QAbstractButton)) else ""
            found.append(f"{name} {text[:60]!r}: {problem}")
    return found
