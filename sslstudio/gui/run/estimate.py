"""Time per epoch, measured rather than guessed: the Method page's 'Estimate time'.

The measuring is :func:`sslstudio.core.train.steptime.time_steps` (shared with the budget planner);
this module runs it on a worker thread and words the answer.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import shiboken6
from PySide6.QtCore import QObject, Signal, Slot

from sslstudio.config import RunConfig
from sslstudio.errors import StepTimingCancelled

log = logging.getLogger(__name__)

EstimateCancelled = StepTimingCancelled  # the Method page's name for it


@dataclass(frozen=True)
class Estimate:
    seconds_per_step: float
    steps_per_epoch: int
    batch_size: int
    device: str  # the trainer's words: "cpu (2 threads)", "cuda (NVIDIA …)"
    num_images: int
    measured_steps: int

    @property
    def seconds_per_epoch(self) -> float:
        return self.seconds_per_step * self.steps_per_epoch


def measure(
    cfg: RunConfig,
    num_images: int,
    *,
    steps: int = 2,
    cancel: threading.Event | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Estimate:
    """Time ``steps`` training steps of ``cfg`` (after one warm-up) on random images. Needs torch.

    Raises:
        EstimateCancelled: ``cancel`` was set between steps.
        ConfigError: the method's options are invalid.
    """
    from sslstudio.core.train.resizing import mean_cost
    from sslstudio.core.train.steptime import time_steps

    t = time_steps(cfg, num_images, steps=steps, cancel=cancel, progress=progress)
    # progressive resizing: the full-size step was timed; the smaller ones before it cost less
    sps = t.seconds_per_step * mean_cost(cfg.progressive_from, cfg.image_size)
    return Estimate(sps, t.steps_per_epoch, t.batch_size, t.device, num_images, t.measured_steps)


def format_duration(seconds: float) -> str:
    """'0.4 s', '45 s', '3 min 20 s', '2 h 05 min', '3 d 4 h'."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s" if s % 60 else f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


def device_words(device: str) -> str:
    """'cpu (2 threads)' -> 'CPU, 2 threads'; 'cuda (NVIDIA H100)' -> 'NVIDIA H100'; 'mps' -> 'Apple
    GPU'."""
    if device.startswith("cpu"):
        inner = device[device.find("(") + 1 : device.rfind(")")] if "(" in device else ""
        return f"CPU, {inner}" if inner else "CPU"
    if device.startswith("cuda"):
        return device[device.find("(") + 1 : device.rfind(")")] if "(" in device else "GPU"
    return "Apple GPU" if device == "mps" else device


def describe_estimate(est: Estimate, epochs: int) -> tuple[str, str, str]:
    """A headline ('≈ 3 min 20 s per epoch on CPU, 2 threads (measured)'), the arithmetic under it,
    and how it was measured (for a tooltip)."""
    per_epoch, device = format_duration(est.seconds_per_epoch), device_words(est.device)
    head = f"≈ {per_epoch} per epoch on {device} (measured)"
    spe = est.steps_per_epoch
    detail = (
        f"{format_duration(est.seconds_per_step)} per step × {spe:,} step{'s' if spe != 1 else ''} "
        "of "
        f"{est.batch_size:,} images; {epochs:,} epoch{'s' if epochs != 1 else ''} ≈ "
        f"{format_duration(est.seconds_per_epoch * epochs)}."
    )
    n = est.measured_steps
    how = (
        f"Measured over {n} training step{'s' if n != 1 else ''} (augmentation, forward, backward, "
        "optimizer) "
        f"on random images after one warm-up step, {est.num_images:,} images in the folder. Health "
        "checks "
        "and checkpoints add a little."
    )
    return head, detail, how


class EstimateWorker(QObject):
    """Runs :func:`measure` on a daemon thread; its signals arrive in the GUI thread.

    A daemon thread, not a QThread: one step of a large model on a CPU can take minutes and
    cannot be interrupted, and a window closing meanwhile must neither wait for it nor destroy
    a running QThread. ``cancel()`` (thread-safe) stops it at the next step; once this object
    is deleted (its page closed) the thread's late signals are dropped.
    """

    progress = Signal(int, int)  # steps done (warm-up included), steps planned
    done = Signal(object)  # Estimate
    failed = Signal(str)
    cancelled = Signal()
    finished = Signal()

    def __init__(self, cfg: RunConfig, num_images: int, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.cfg = cfg
        self.num_images = num_images
        self._cancel = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self.run, name="sslstudio-estimate", daemon=True).start()

    @Slot()
    def run(self) -> None:
        try:
            est = measure(
                self.cfg,
                self.num_images,
                cancel=self._cancel,
                progress=lambda d, n: self._emit(self.progress, d, n),
            )
        except EstimateCancelled:
            self._emit(self.cancelled)
        except Exception as exc:  # out of memory, bad options: shown beside the button
            from sslstudio.gui.run.worker import user_message

            log.warning("estimate failed:\n%s", traceback.format_exc())
            self._emit(self.failed, user_message(exc))
        else:
            self._emit(self.done, est)
        finally:
            self._emit(self.finished)

    def _emit(self, signal: Any, *args: object) -> None:
        if not shiboken6.isValid(self):
            return  # the page is gone
        with contextlib.suppress(RuntimeError):  # deleted between the check and the emit
            signal.emit(*args)

    def cancel(self) -> None:
        self._cancel.set()
