"""GUI test fixtures: offscreen Qt, a private SSLSTUDIO_HOME, and no Qt warning left unnoticed."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before anything imports Qt

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QMessageLogContext, QtMsgType, qInstallMessageHandler

from sslstudio.paths import sample_images_dir


@pytest.fixture(autouse=True)
def sslstudio_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Settings, runs and caches of each test live in its own temporary folder."""
    home = tmp_path / "home"
    monkeypatch.setenv("SSLSTUDIO_HOME", str(home))
    return home


@pytest.fixture(autouse=True)
def no_sleep_inhibitor(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs in tests spawn no systemd-inhibit/caffeinate: the inhibitor finds no binary (a logged
    no-op;
    on Windows the real SetThreadExecutionState is harmless and released)."""
    from sslstudio.gui.run import sleep_inhibit

    monkeypatch.setattr(sleep_inhibit, "find_binary", lambda name: None)


# the offscreen platform plugin cannot do some window-system things; it says so, harmlessly
OFFSCREEN_NOISE = ("This plugin does not support",)


@pytest.fixture(autouse=True)
def qt_messages() -> Iterator[list[str]]:
    """Fail the test on any Qt warning or critical message (e.g. 'QThread: Destroyed while ...')."""
    seen: list[str] = []
    lock = threading.Lock()  # Qt calls the handler from whichever thread logged

    def handler(kind: QtMsgType, context: QMessageLogContext, message: str) -> None:
        if message.startswith(OFFSCREEN_NOISE):
            return
        if kind in (QtMsgType.QtWarningMsg, QtMsgType.QtCriticalMsg, QtMsgType.QtFatalMsg):
            with lock:
                seen.append(f"{kind.name}: {message}")

    previous = qInstallMessageHandler(handler)
    yield seen
    qInstallMessageHandler(previous)
    assert not seen, "Qt reported:\n" + "\n".join(seen)


@pytest.fixture(scope="session")
def themed_app(qapp):  # noqa: ANN001 (pytest-qt's QApplication)
    from sslstudio.gui.app import make_app

    return make_app()


@pytest.fixture
def window(qtbot, themed_app):  # noqa: ANN001
    """A main window at 1280x800 (not yet pointed at a folder)."""
    from sslstudio.gui.main_window import MainWindow

    w = MainWindow()
    qtbot.addWidget(w)
    w.resize(1280, 800)
    w.show()
    yield w
    w.controller.shutdown(60_000)  # never leave a training thread behind a test
    qtbot.waitUntil(lambda: not w.controller.is_running(), timeout=10_000)
    w.close()


@pytest.fixture
def ready_window(window, qtbot):  # noqa: ANN001
    """The window on the sample images, scanned, with the training engine loaded."""
    window.open_folder(sample_images_dir())
    qtbot.waitUntil(
        lambda: window.data_page.index is not None and window.catalog is not None, timeout=60_000
    )
    return window


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """Six small random PNGs in two class folders, a damaged image and a document."""
    import numpy as np
    from PIL import Image

    root = tmp_path / "images"
    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(
                root / cls / f"{i}.png"
            )
    (root / "notes.txt").write_text("a document: ignored, not a failure")
    (root / "a" / "broken.png").write_bytes(
        b"\x89PNG\r\n\x1a\n" + b"\0" * 40
    )  # a PNG header, no image
    return root
