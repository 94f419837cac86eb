"""Time per training step, measured rather than guessed: a few real steps on random images.

The method is built as the trainer builds it (``build_method``), with the configured batch,
views, thread count and device; each timed step is the trainer's (``step.optimise``: augment
the batch, forward, backward, optimizer step) plus the method's end-of-step update and one device
sync. Decoding is left out (the trainer reads decoded images from a cache in memory). The first
step is a warm-up and is not counted (allocations, kernel selection). Used by the Method page's
estimate and by the budget planner.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from sslstudio.config import RunConfig
from sslstudio.errors import StepTimingCancelled

SLOW_STEP_S = 10.0  # after a warm-up this slow, one timed step is enough


@dataclass(frozen=True)
class StepTiming:
    seconds_per_step: float  # median of the timed steps
    steps_per_epoch: int
    batch_size: int
    device: str  # the trainer's words: "cpu (2 threads)", "cuda (NVIDIA …)"
    measured_steps: int


def time_steps(
    cfg: RunConfig,
    num_images: int,
    *,
    steps: int = 2,
    cancel: threading.Event | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> StepTiming:
    """Time ``steps`` training steps of ``cfg`` after one warm-up; the thread count is restored.

    Raises:
        StepTimingCancelled: ``cancel`` was set between steps.
    """
    from sslstudio.core.methods import build_method
    from sslstudio.core.train.device import describe, pick_device
    from sslstudio.core.train.optimizers import build_optimizer
    from sslstudio.core.train.step import amp_dtype, optimise
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
        indices = np.arange(batch)
        amp = amp_dtype(cfg, device)
        times: list[float] = []
        planned = 1 + steps
        i = 0
        while i < planned:
            if cancel is not None and cancel.is_set():
                raise StepTimingCancelled
            t0 = time.perf_counter()
            views = pipeline(images.to(device, non_blocking=True), step_generator(cfg.seed, i))
            loss, _ = optimise(method, opt, None, views, indices, amp, device)
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
        return StepTiming(statistics.median(times), spe, batch, describe(device), len(times))
    finally:
        torch.set_num_threads(previous_threads)
