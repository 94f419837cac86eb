"""Every page holds at 1280x720 and at the window's minimum size: no label or button whose text
does not fit, no squashed input, no sideways scrolling (a page may scroll down)."""

from __future__ import annotations

import pytest

from sslstudio.gui.main_window import STEPS
from tests.gui.fit_check import clipped


@pytest.mark.parametrize("size", ["1280x720", "minimum"])
def test_every_page_fits(ready_window, qtbot, size: str) -> None:
    w = ready_window
    width, height = (w.minimumWidth(), w.minimumHeight()) if size == "minimum" else (1280, 720)
    w.resize(width, height)
    qtbot.waitUntil(lambda: w.width() == width and w.height() == height, timeout=5_000)
    problems = []
    for name in STEPS:
        w.show_page(name)
        page = w.pages[STEPS.index(name)]
        qtbot.wait(50)  # layouts settle over a few event-loop turns
        problems += [f"{name}: {line}" for line in clipped(page)]
        if page.scroll.horizontalScrollBar().isVisible():
            need = page.scroll.widget().minimumSizeHint().width()
            problems.append(f"{name}: scrolls sideways ({need} px wide)")
    assert not problems, "\n".join(problems)


def test_the_checker_sees_a_clipped_label_and_button(qtbot) -> None:
    from PySide6.QtWidgets import QLabel, QPushButton, QVBoxLayout, QWidget

    box = QWidget()
    qtbot.addWidget(box)
    lay = QVBoxLayout(box)
    label, button = QLabel("a label far too long for its room"), QPushButton("Query with a file…")
    for x in (label, button):
        x.setFixedWidth(60)
        lay.addWidget(x)
    box.show()
    found = clipped(box)
    assert len(found) == 2 and "needs" in found[0]
