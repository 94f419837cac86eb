"""The Method page's 'Estimate time' button and its answer: a measured time per epoch.

A view over :class:`sslstudio.gui.run.estimate.EstimateWorker`. The page hands it the config to
measure (``estimate(cfg, num_images)``) and tells it when settings change (``settings_changed``)
or a run is active (``set_blocked``); it never reaches into the page.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from PySide6.QtCore import Slot
from PySide6.QtWidgets import QLabel, QPushButton, QVBoxLayout, QWidget

from sslstudio.config import RunConfig
from sslstudio.gui.run.estimate import Estimate, EstimateWorker, describe_estimate
from sslstudio.gui.widgets.panels import hbox, hint, with_shortcut

ASSUMED_NOTE = " ({n:,} images assumed: no folder scanned yet.)"
# Steps are timed at this batch at most, then scaled to the run's batch: a CPU step's time grows
# about linearly with the batch, and timing ResNet-18 at batch 124 took 106 s here (2 loaded
# cores, 1 thread), too long to wait for before Start. Scaling counts the per-step overhead
# (optimiser, ~2 % at batch 32) once per 32 images: the estimate errs long, not short.
PROBE_BATCH = 32
SCALED_NOTE = " Timed at batch {probe}, scaled to batch {batch}."


def probe_config(cfg: RunConfig, num_images: int) -> tuple[RunConfig, int]:
    """The config to time (batch at most PROBE_BATCH) and the batch the run will use."""
    batch = max(2, min(cfg.batch_size, num_images))  # as the trainer and time_steps take it
    return dataclasses.replace(cfg, batch_size=min(batch, PROBE_BATCH)), batch


def scaled(est: Estimate, batch: int) -> Estimate:
    """``est`` (timed at a smaller batch) for the run's ``batch``."""
    if est.batch_size >= batch:
        return est
    return dataclasses.replace(
        est,
        seconds_per_step=est.seconds_per_step * batch / est.batch_size,
        batch_size=batch,
        steps_per_epoch=max(1, est.num_images // batch),
    )


KEYS = (
    "method",
    "method_options",
    "backbone",
    "image_size",
    "small_stem",
    "batch_size",
    "device",
    "threads",
    "cache_size",
    "amp",
    "augment",
    "optim",
)


def estimate_key(cfg: RunConfig, num_images: int | None) -> tuple[Any, ...]:
    """What a measurement depends on: when it changes, the shown estimate is stale."""
    return (*(repr(getattr(cfg, k)) for k in KEYS), num_images)


class EstimatePanel(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        col = QVBoxLayout(self)
        col.setContentsMargins(0, 0, 0, 0)
        col.setSpacing(6)
        self.button = QPushButton("Estimate time")
        self._tip = with_shortcut(
            "Time a few real training steps with these settings and estimate the time per epoch",
            "Ctrl+E",
        )
        self.button.setToolTip(self._tip)
        self.label = QLabel("")
        self.label.setObjectName("estimate")
        self.label.setWordWrap(True)
        col.addLayout(hbox(self.button, self.label))
        self.detail = hint("")
        self.detail.setVisible(False)
        col.addWidget(self.detail)
        self.worker: EstimateWorker | None = None
        self.last: Estimate | None = None
        self._key: tuple[Any, ...] | None = None  # the settings the shown estimate measured
        self._pending_key: tuple[Any, ...] | None = None
        self._epochs = 1
        self._batch = 0  # the run's batch, for scaling a timing made at a smaller one
        self._ready = False  # the training engine is loaded
        self._blocked = False  # a run is active
        self._update_button()

    @property
    def busy(self) -> bool:
        return self.worker is not None

    def set_ready(self, ready: bool) -> None:
        self._ready = ready
        self._update_button()

    def set_blocked(self, blocked: bool) -> None:
        """While a run trains, measuring would compete with it for the cores (and torch's
        threads)."""
        self._blocked = blocked
        self._update_button()

    def settings_changed(self, cfg: RunConfig, num_images: int | None) -> None:
        if self._key is not None and self._key != estimate_key(cfg, num_images):
            self._key = None
            self.label.setText("Settings changed: estimate again.")
            self.detail.setVisible(False)

    def _update_button(self) -> None:
        self.button.setText("Cancel" if self.busy else "Estimate time")
        self.button.setEnabled(self.busy or (self._ready and not self._blocked))
        self.button.setToolTip(
            "Not while a run is training: both would compete for the processor"
            if self._blocked and not self.busy
            else self._tip
        )

    def estimate(self, cfg: RunConfig, num_images: int | None, assumed: int) -> None:
        """Measure ``cfg`` in the background (``assumed`` images when no folder was scanned);
        while measuring, a second call cancels."""
        if self.worker is not None:
            self.worker.cancel()
            self.label.setText("Cancelling…")
            return
        if not self._ready or self._blocked:
            return
        probe, self._batch = probe_config(cfg, num_images or assumed)
        worker = EstimateWorker(probe, num_images or assumed, self)
        worker.progress.connect(self._on_progress)
        worker.done.connect(self._on_done)
        worker.failed.connect(lambda message: self.label.setText(f"Could not measure: {message}"))
        worker.cancelled.connect(lambda: self.label.setText("Cancelled."))
        worker.finished.connect(self._on_finished)
        self.worker = worker
        self._pending_key = estimate_key(cfg, num_images)
        self._epochs = cfg.epochs
        self._assumed = None if num_images else assumed
        worker.start()
        self.label.setText("Measuring: building the model…")
        self.detail.setVisible(False)
        self._update_button()

    @Slot(int, int)
    def _on_progress(self, done: int, planned: int) -> None:
        if self.worker is not None and not self.label.text().startswith("Cancel"):
            self.label.setText(f"Measuring: step {done} of {planned}…")

    @Slot(object)
    def _on_done(self, est: Estimate) -> None:
        probe = est.batch_size
        est = scaled(est, self._batch)
        head, detail, how = describe_estimate(est, self._epochs)
        if probe < est.batch_size:
            detail += SCALED_NOTE.format(probe=probe, batch=est.batch_size)
        if self._assumed:
            detail += ASSUMED_NOTE.format(n=self._assumed)
        self.last = est
        self.label.setText(head)
        self.label.setToolTip(how)
        self.detail.setText(detail)
        self.detail.setToolTip(how)
        self.detail.setVisible(True)
        self._key = self._pending_key

    @Slot()
    def _on_finished(self) -> None:
        if self.worker is not None:
            self.worker.deleteLater()
        self.worker = None
        self._update_button()

    def cancel(self) -> None:
        """Stop at the next step; the daemon thread ends then, or with the app."""
        if self.worker is not None:
            self.worker.cancel()
