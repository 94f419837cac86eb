"""Time per epoch, measured rather than guessed: a few real training steps on random images.

The method is built as the trainer builds it (``build_method``), with the configured batch,
views, thread count and device; each timed step is the trainer's: augment the batch, forward,
backward, optimizer step, the method's end-of-step update, one device sync. Decoding is left out
(the trainer reads decoded images from a cache in memory). The first step is a warm-up and is not
counted (allocations, kernel selection).
"""

from __future__ import annotations

import contextlib
import logging
import statistics
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import shiboken6
from PySide6.QtCore import QObject, Signal, Slot

from sslstudio.config import RunConfig

log = logging.getLogger(__name__)

SLOW_STEP_S = 10.0  # after a warm-up this slow, one timed step is enough


class EstimateCancelled(Exception):
    pass


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
    import torch

    from sslstudio.core.device import describe, pick_device
    from sslstudio.core.methods import build_method
    from sslstudio.core.optimizers import build_optimizer
    from sslstudio.core.transforms.views import ViewPipeline, default_cache_size, step_generator

    previous_threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)  # process-wide: restored below
    try:
        device, _ = pick_device(cfg.device)
        torch.manual_seed(cfg.seed)
        method = build_method(cfg).to(device)
        batch = max(2, min(cfg.batch_size, num_images))
        spe = max(1, num_images // batch)
        total = max(1, spe * cfg.epochs)
        method.on_train_start(num_images, total)
        opt = build_optimizer(method, cfg.optim, cfg.optim.lr)
        pipeline = ViewPipeline(method.view_specs(cfg), constraints=method.constraints)
        side = cfg.cache_size or default_cache_size(cfg.image_size)
        images = torch.randint(0, 256, (batch, 3, side, side), dtype=torch.uint8)
        indices = torch.arange(batch, device=device)
        amp = (torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float16) \
            if cfg.amp and device.type == "cuda" else None  # fmt: skip
        times: list[float] = []
        planned = 1 + steps
        i = 0
        while i < planned:
            if cancel is not None and cancel.is_set():
                raise EstimateCancelled
            t0 = time.perf_counter()
            views = pipeline(images.to(device, non_blocking=True), step_generator(cfg.seed, i))
            method.train()
            with torch.autocast(device.type, dtype=amp) if amp else contextlib.nullcontext():
                if method.wants_indices:
                    loss, _ = method.training_step(views, indices=indices)
                else:
                    loss, _ = method.training_step(views)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            method.on_step_end(i, total)
            loss.item()  # the step's one device sync, as in the trainer
            dt = time.perf_counter() - t0
            if i == 0:
                if dt > SLOW_STEP_S:
                    planned = 2
            else:
                times.append(dt)
            i += 1
            if progress is not None:
                progress(i, planned)
        return Estimate(statistics.median(times), spe, batch, describe(device), num_images, len(times))
    finally:
        torch.set_num_threads(previous_threads)


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
    """'cpu (2 threads)' -> 'CPU, 2 threads'; 'cuda (NVIDIA H100)' -> 'NVIDIA H100'; 'mps' -> 'Apple GPU'."""
    if device.startswith("cpu"):
        inner = device[device.find("(") + 1 : device.rfind(")")] if "(" in device else ""
        return f"CPU, {inner}" if inner else "CPU"
    if device.startswith("cuda"):
        return device[device.find("(") + 1 : device.rfind(")")] if "(" in device else "GPU"
    return "Apple GPU" if device == "mps" else device


def describe_estimate(est: Estimate, epochs: int) -> tuple[str, str, str]:
    """A headline ('≈ 3 min 20 s per epoch on CPU, 2 threads (measured)'), the arithmetic under it,
    and how it was measured (for a tooltip)."""
    head = f"≈ {format_duration(est.seconds_per_epoch)} per epoch on {device_words(est.device)} (measured)"
    spe = est.steps_per_epoch
    detail = (f"{format_duration(est.seconds_per_step)} per step × {spe:,} step{'s' if spe != 1 else ''} of "
              f"{est.batch_size:,} images; {epochs:,} epoch{'s' if epochs != 1 else ''} ≈ "
              f"{format_duration(est.seconds_per_epoch * epochs)}.")  # fmt: skip
    n = est.measured_steps
    how = (f"Measured over {n} training step{'s' if n != 1 else ''} (augmentation, forward, backward, optimizer) "
           f"on random images after one warm-up step, {est.num_images:,} images in the folder. Health checks "
           "and checkpoints add a little.")  # fmt: skip
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
            est = measure(self.cfg, self.num_images, cancel=self._cancel,
                          progress=lambda d, n: self._emit(self.progress, d, n))  # fmt: skip
        except EstimateCancelled:
            self._emit(self.cancelled)
        except Exception as exc:  # out of memory, bad options: shown beside the button
            from sslstudio.gui.worker import user_message

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
