"""Start the window (``run_app``), or check an installation end to end (``--selftest``).

Importing this module imports Qt but not torch: the window is on screen before the training
engine has finished loading (``catalog.py`` loads it in the background).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QEventLoop, Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication

from sslstudio import __version__

SELFTEST_TIMEOUT_S = 55.0


def make_app(argv: list[str] | None = None) -> QApplication:
    """The QApplication (reused when one exists, as under pytest-qt), named, iconed and themed."""
    from sslstudio.gui import theme

    app = QApplication.instance()
    if app is None:
        # fractional scale factors (125 %, 150 %) as the system asks, not rounded to 1x or 2x
        QGuiApplication.setHighDpiScaleFactorRoundingPolicy(
            Qt.HighDpiScaleFactorRoundingPolicy.PassThrough
        )
        app = QApplication(argv if argv is not None else sys.argv[:1])
    assert isinstance(app, QApplication)
    app.setApplicationName("SSL Studio")
    app.setApplicationDisplayName("SSL Studio")
    app.setOrganizationName("SSL Studio")
    app.setApplicationVersion(__version__)
    app.setWindowIcon(theme.app_icon())
    theme.apply_theme(app)
    theme.follow_system(app)  # and switch light/dark live when the system does
    return app


def run_app(folder: str | None, selftest: bool = False) -> int:
    """Open the window on ``folder`` (default: the last folder, else the sample images)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if selftest:
        return selftest_main(folder)
    from sslstudio.gui import catalog

    catalog.preload()  # torch loads while the window is built, not after it appears
    from sslstudio.gui.main_window import MainWindow

    app = make_app()
    window = MainWindow()
    window.show()
    window.open_initial(folder)
    # a last guard: an exit that bypassed the window's close (e.g. a signal) still stops the run
    app.aboutToQuit.connect(window.controller.shutdown)
    return app.exec()


def wait_until(app: QApplication, done: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Process events until ``done()`` or raise ``TimeoutError`` naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
        time.sleep(0.005)


def selftest_main(folder: str | None) -> int:
    """Build the window offscreen, scan, train SimCLR for 2 tiny steps, report; 0 when all
    worked."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    home = tempfile.mkdtemp(prefix="sslstudio-selftest-")
    saved_home = os.environ.get("SSLSTUDIO_HOME")
    os.environ["SSLSTUDIO_HOME"] = home  # settings, runs and caches of the test go here
    t0 = time.monotonic()
    try:
        message = _selftest(folder, t0)
    except Exception as exc:
        print(f"sslstudio selftest FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        if saved_home is None:
            os.environ.pop("SSLSTUDIO_HOME", None)
        else:
            os.environ["SSLSTUDIO_HOME"] = saved_home
        shutil.rmtree(home, ignore_errors=True)
    print(message)
    return 0


def _selftest(folder: str | None, t0: float) -> str:
    from sslstudio.core.events import RunFailed, RunFinished, RunStarted, StepLogged
    from sslstudio.gui.main_window import MainWindow
    from sslstudio.paths import sample_images_dir

    app = make_app()
    window = MainWindow()
    window.show()
    events: list[object] = []
    errors: list[str] = []
    window.controller.event.connect(events.append)
    window.controller.failed.connect(lambda msg, _details: errors.append(msg))
    budget = lambda: SELFTEST_TIMEOUT_S - (time.monotonic() - t0)  # noqa: E731
    try:
        window.open_folder(folder or str(sample_images_dir()))
        wait_until(app, lambda: not window.data_page.is_scanning, budget(), "the folder scan")
        index = window.data_page.index
        if index is None or not index.images:
            raise RuntimeError(f"the scan found no usable images in {window.data_page.folder}")
        wait_until(app, lambda: window.catalog is not None, budget(), "the training engine to load")
        tiny = dataclasses.replace(
            window.config_model.config,
            method="simclr",
            backbone="tiny_cnn",
            image_size=32,
            batch_size=16,
            epochs=1,
            max_steps=2,
            monitor_every=0,
            checkpoint_every=2,
            method_options={},
        )
        window.load_config(tiny)
        window.start_run()
        if not window.controller.is_running():
            raise RuntimeError("the run did not start (see the Train page)")
        wait_until(app, lambda: not window.controller.is_running(), budget(), "2 training steps")
        if errors or any(isinstance(e, RunFailed) for e in events):
            raise RuntimeError(
                "training failed: "
                + "; ".join(errors or [e.message for e in events if isinstance(e, RunFailed)])
            )
        finished = [e for e in events if isinstance(e, RunFinished)]
        steps = [e for e in events if isinstance(e, StepLogged)]
        if not finished or len(steps) != 2:
            raise RuntimeError(
                f"expected 2 steps and a finished run, got {len(steps)} steps, "
                f"finished={bool(finished)}"
            )
        if not Path(finished[0].path).exists():
            raise RuntimeError(f"the final checkpoint {finished[0].path} is missing")
    finally:
        window.close()
        window.controller.shutdown(30_000)
        window.deleteLater()
        app.processEvents()
    device = next(e.device for e in events if isinstance(e, RunStarted))
    return (
        f"sslstudio selftest OK: {len(index.images)} images scanned, 2 SimCLR steps on {device} "
        f"(final loss {finished[0].final_loss:.3f}) in {time.monotonic() - t0:.1f} s"
    )
