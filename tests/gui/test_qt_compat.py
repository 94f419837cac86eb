"""The process survives many Qt calls even on a PySide6 that drops references to None/True."""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QLabel

from sslstudio.gui import qt_compat


class _Emitter(QObject):
    ping = Signal()


def test_two_hundred_thousand_void_calls_and_emits(qtbot) -> None:
    label = QLabel()
    qtbot.addWidget(label)
    emitter = _Emitter()
    for _ in range(200_000):  # more than None's or True's count in a fresh 3.11 process
        label.setText("x")
        emitter.ping.emit()
    assert sys.getrefcount(None) > 0 and sys.getrefcount(True) > 0  # and we are still alive


def test_guard_only_when_needed() -> None:
    lost = qt_compat.leaked_references()
    if sys.version_info >= (3, 12) or max(lost.values()) < 32:
        assert not qt_compat._applied
    else:  # a leaking build: the guard must be on, with room to spare
        assert qt_compat._applied and sys.getrefcount(None) > qt_compat.BALLAST // 2
