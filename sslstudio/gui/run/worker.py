"""Workers: QObjects that run core generators on a QThread and speak through signals.

Stop, pause and cancel are ``threading.Event`` s set *directly* from the GUI thread: a slot of
an object living in the worker thread would be queued behind ``run()`` and fire only after the
work ended. Worst-case stop latency of training: one step plus one batch fetch.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QDeadlineTimer, QObject, Qt, QThread, Signal, Slot

from sslstudio.config import RunConfig

log = logging.getLogger(__name__)


class ThreadJob(QObject):
    """A worker on a QThread of its own, wired once for every kind of worker.

    ``started -> run``, ``finished -> quit`` (a direct connection: ``quit`` is thread-safe, and
    a queued one would never run while the GUI thread blocks in :meth:`wait` at shutdown).
    The worker is destroyed in the GUI thread once its thread has ended, by dropping the last
    Python reference, never by ``deleteLater`` in its own thread: there ``~QObject`` holds Qt's
    connection lock while PySide asks Python (for the GIL) about overrides, and a GUI thread
    that holds the GIL and connects or disconnects anything waits on that lock: a deadlock
    (seen as a rare test-suite hang with both threads idle). Dropping it earlier, while its
    thread still runs, would be a use-after-free.

    Args:
        worker: a QObject with a ``run`` slot and a ``finished`` signal; it is moved to the thread.
        parent: a GUI-thread object that outlives the work (a page, the run controller).
    """

    ended = Signal()  # in the GUI thread, after the thread has finished

    def __init__(self, worker: QObject, name: str, parent: QObject) -> None:
        super().__init__(parent)
        self.worker = worker
        self.thread = QThread()
        self.thread.setObjectName(name)
        worker.moveToThread(self.thread)
        self.thread.started.connect(worker.run)
        worker.finished.connect(self.thread.quit, Qt.ConnectionType.DirectConnection)
        self.thread.finished.connect(self._on_finished)
        self.done = False
        self.thread.start()

    def wait(self, timeout_ms: int) -> bool:
        """Block until the thread has ended (True) or ``timeout_ms`` passed (False)."""
        if self.done:
            return True
        try:
            return self.thread.wait(QDeadlineTimer(timeout_ms))
        except RuntimeError:  # the thread object was deleted: it had finished
            return True

    @Slot()
    def _on_finished(self) -> None:
        self.wait(60_000)  # finished() is emitted just before the thread's last clean-up
        self.done = True
        # deleted here, after the wait: a queued thread.deleteLater could be processed before
        # this slot, and then the run's end (ended) was never announced
        with contextlib.suppress(RuntimeError):
            self.thread.deleteLater()
        self.ended.emit()
        self.deleteLater()  # and with it the last references to the worker (deleted here, in
        # the GUI thread, its own thread over) and to the thread


class TrainingWorker(QObject):
    """Iterates :func:`sslstudio.core.train.trainer.train` and emits each event.

    ``failed`` carries a one-line message; the full traceback is in :attr:`details` (read it
    after ``failed`` arrived: the worker has stopped writing by then).
    """

    event = Signal(object)  # a sslstudio.core.events.Event
    failed = Signal(str)
    finished = Signal()

    def __init__(self, cfg: RunConfig, resume_from: str | Path | None = None) -> None:
        super().__init__()
        self._cfg = cfg
        self._resume_from = resume_from
        self._stop = threading.Event()
        self._pause = threading.Event()
        self.details = ""

    @Slot()
    def run(self) -> None:
        try:
            from sslstudio.core.train.trainer import train  # torch loads here, off the GUI thread

            for ev in train(
                self._cfg, stop=self._stop, resume_from=self._resume_from, pause=self._pause
            ):
                self.event.emit(ev)
        except Exception as exc:  # surfaced to the GUI, never swallowed
            self.details = traceback.format_exc()
            log.error("training failed:\n%s", self.details)
            self.failed.emit(user_message(exc))
        finally:
            self.finished.emit()

    def request_stop(self) -> None:
        """Thread-safe; the trainer checkpoints and yields ``RunStopped`` at the next step."""
        self._stop.set()
        self._pause.clear()  # a paused run must wake up to stop

    def set_paused(self, paused: bool) -> None:
        if paused:
            self._pause.set()
        else:
            self._pause.clear()


class ScanWorker(QObject):
    """Runs :func:`sslstudio.core.data.indexstore.open_index` (a scan, or the one kept on disk);
    ``done`` carries ``(index, index.stats(), Recognition | None)`` (what the images are). Progress
    is throttled to ~20 Hz.

    Every signal carries ``job``, so a page can ignore a scan it has already replaced.
    """

    progress = Signal(int, int, int)  # job, done, total (-1 while unknown)
    done = Signal(int, object)  # job, (ImageIndex, IndexStats, Recognition | None)
    failed = Signal(int, str)
    cancelled = Signal(int)
    finished = Signal()

    def __init__(
        self, root: str, verify: bool = True, job: int = 0, rescan: bool = False, tiling: Any = None
    ) -> None:
        super().__init__()
        self._root = root
        self._tiling = tiling
        self._verify = verify
        self._rescan = rescan
        self.job = job
        self._cancel = threading.Event()
        self._last_emit = 0.0

    @Slot()
    def run(self) -> None:
        try:
            from sslstudio.core.data.indexstore import open_index
            from sslstudio.core.data.scan import ScanCancelled
            from sslstudio.core.train.prepare import median_short_side
            from sslstudio.core.transforms.recognise import recognise_index
            from sslstudio.paths import cache_dir

            try:
                extra = {} if self._tiling is None else {"tiling": self._tiling}
                index = open_index(
                    self._root,
                    cache_dir(),
                    verify=self._verify,
                    rescan=self._rescan,
                    progress=self._on_progress,
                    cancel=self._cancel,
                    **extra,
                )
                stats = (
                    index.stats()
                )  # vectorised, but it may read a sample of headers: not on the GUI thread
                found = recognise_index(index) if len(index.images) else None  # reads 32 images
                native = median_short_side(index) if found is not None else None
            except ScanCancelled:
                self.cancelled.emit(self.job)
                return
            if self._cancel.is_set():
                self.cancelled.emit(self.job)
            else:
                self.done.emit(self.job, (index, stats, found, native))
        except Exception as exc:
            log.error("scanning %s failed:\n%s", self._root, traceback.format_exc())
            self.failed.emit(self.job, user_message(exc))
        finally:
            self.finished.emit()

    def _on_progress(self, done: int, total: int | None) -> None:
        # one signal per file would flood the GUI's queue on a 100k-image folder
        now = time.monotonic()
        if now - self._last_emit >= 0.05 or (total is not None and done >= total):
            self._last_emit = now
            self.progress.emit(self.job, done, -1 if total is None else total)

    def cancel(self) -> None:
        self._cancel.set()


class FunctionWorker(QObject):
    """Calls ``fn()`` once off the GUI thread: ``done(result)`` or ``failed(message)``, then
    ``finished``.

    For short reads and writes the GUI thread must not wait on (listing runs, reading a metrics
    log, deleting a folder). ``tag`` travels with the result, so a view can drop stale answers.
    """

    done = Signal(object, object)  # tag, result
    failed = Signal(object, str)  # tag, message
    finished = Signal()

    def __init__(self, fn: Callable[[], Any], tag: object = None) -> None:
        super().__init__()
        self._fn = fn
        self.tag = tag

    @Slot()
    def run(self) -> None:
        try:
            result = self._fn()
        except Exception as exc:
            log.error("background task failed:\n%s", traceback.format_exc())
            self.failed.emit(self.tag, user_message(exc))
        else:
            self.done.emit(self.tag, result)
        finally:
            self.finished.emit()


def user_message(exc: BaseException) -> str:
    from sslstudio.errors import SSLStudioError

    # our own errors are written for users; anything else keeps its type for a bug report
    return str(exc) if isinstance(exc, SSLStudioError) else f"{type(exc).__name__}: {exc}"
