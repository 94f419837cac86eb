"""One training run at a time: the QThread wiring, the run's state, and its events re-emitted.

Pages and menus are views over this object: they call start/pause/resume/stop and listen to
``stateChanged`` and ``event``. Stop is acknowledged at once (state ``stopping``) although the
trainer needs up to a step and a checkpoint to actually end. A run is ``preparing`` while the
trainer scans and decodes the folder (``Preparing`` events), ``running`` from ``RunStarted``.
The machine is kept awake from ``RunStarted`` until the thread has ended.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal, Slot

from sslstudio.config import RunConfig
from sslstudio.core.events import RunFailed, RunFinished, RunStarted, RunStopped
from sslstudio.gui.run.sleep_inhibit import SleepInhibitor
from sslstudio.gui.run.worker import ThreadJob, TrainingWorker

if TYPE_CHECKING:
    from sslstudio.gui.run.torchrun_worker import TorchrunWorker

log = logging.getLogger(__name__)

IDLE, PREPARING, RUNNING, PAUSED, STOPPING = "idle", "preparing", "running", "paused", "stopping"
ACTIVE = (PREPARING, RUNNING, PAUSED)  # states in which stop() has something to stop


class RunController(QObject):
    """Owns the worker and its thread for the run in progress.

    Signals:
        event(object): every trainer event, in the GUI thread.
        stateChanged(str): ``idle``, ``preparing``, ``running``, ``paused`` or ``stopping``.
        failed(str, str): a one-line message and the traceback.
        runEnded(str): ``finished``, ``stopped`` or ``failed``, after the thread has finished.
    """

    event = Signal(object)
    stateChanged = Signal(str)
    failed = Signal(str, str)
    runEnded = Signal(str)

    def __init__(
        self, parent: QObject | None = None, inhibitor: SleepInhibitor | None = None
    ) -> None:
        super().__init__(parent)
        self.inhibitor = inhibitor or SleepInhibitor()
        self._worker: TrainingWorker | TorchrunWorker | None = None
        self._job: ThreadJob | None = None
        self._state = IDLE
        self._outcome = ""
        self.run_dir: str | None = None  # the current or last run's folder
        self.resumable: str | None = None  # a stopped/failed run with a checkpoint to go on from
        self.last_config: RunConfig | None = None
        self.can_pause = True  # False for a torchrun run (see gui/torchrun_worker.py)

    @property
    def state(self) -> str:
        return self._state

    def is_running(self) -> bool:
        """True from start() until the worker thread has finished (paused and stopping included)."""
        return self._job is not None

    def start(
        self, cfg: RunConfig, resume_from: str | Path | None = None, processes: int = 1
    ) -> None:
        """Start training ``cfg`` (or continue the run folder ``resume_from``) on a new thread;
        ``processes`` > 1: that many ranks under torchrun (one per GPU), followed from here."""
        if self.is_running():
            raise RuntimeError("a run is already in progress")
        self.last_config = cfg
        self._outcome = ""
        self.run_dir = str(resume_from) if resume_from else None
        if processes > 1:
            from sslstudio.gui.run.torchrun_worker import TorchrunWorker

            worker: TrainingWorker | TorchrunWorker = TorchrunWorker(cfg, resume_from, processes)
        else:
            worker = TrainingWorker(cfg, resume_from)
        self.can_pause = getattr(worker, "can_pause", True)
        worker.event.connect(self._on_event)
        worker.failed.connect(self._on_failed)
        self._worker = worker
        self._job = ThreadJob(worker, "sslstudio-training", self)
        self._job.ended.connect(self._on_thread_finished)
        self._set_state(PREPARING)

    def pause(self) -> None:
        if self._worker is not None and self._state == RUNNING and self.can_pause:
            self._worker.set_paused(True)
            self._set_state(PAUSED)

    def resume(self) -> None:
        if self._worker is not None and self._state == PAUSED:
            self._worker.set_paused(False)
            self._set_state(RUNNING)

    def stop(self) -> None:
        """Ask the run to checkpoint and end; returns at once."""
        if self._worker is not None and self._state in ACTIVE:
            self._worker.request_stop()
            self._set_state(STOPPING)

    def shutdown(self, timeout_ms: int = 120_000) -> bool:
        """Stop and block until the thread has finished (app exit). False if it timed out."""
        if self._job is None:
            return True
        self.stop()
        job = self._job
        ended = job.wait(timeout_ms)
        if ended and self._job is job:  # the GUI thread was blocked: finish here, not when the
            self._on_thread_finished()  # queued end notice arrives (it may not, this late)
        return ended

    def _set_state(self, state: str) -> None:
        if state != self._state:
            self._state = state
            self.stateChanged.emit(state)

    @Slot(object)
    def _on_event(self, ev: object) -> None:
        if isinstance(ev, RunStarted):
            self.run_dir = ev.run_dir
            self.inhibitor.start()
            if self._state == PREPARING:
                self._set_state(RUNNING)
        elif isinstance(ev, RunStopped):
            self._outcome = "stopped"
            self.run_dir = ev.run_dir or self.run_dir
            # stopped before the first step: the folder (if known) holds only config.json, and
            # resuming it starts again at step 0; a new run stopped while scanning is not known here
            self.resumable = self.run_dir
        elif isinstance(ev, RunFinished):
            self._outcome = "finished"
            self.resumable = None
        elif isinstance(ev, RunFailed):
            self._outcome = "failed"
            self.resumable = self.run_dir if ev.last_checkpoint else None
        self.event.emit(ev)

    @Slot(str)
    def _on_failed(self, message: str) -> None:
        self._outcome = "failed"
        details = self._worker.details if self._worker is not None else ""
        self.failed.emit(message, details)

    @Slot()
    def _on_thread_finished(self) -> None:
        if self._job is None:  # already finished by shutdown()
            return
        self._worker = None  # safe now: the thread has ended (ThreadJob waited for it)
        self._job = None
        self.inhibitor.release()
        outcome = self._outcome or "stopped"
        self._set_state(IDLE)
        self.runEnded.emit(outcome)
