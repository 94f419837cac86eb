"""One training step on the device (forward, backward, the optimizer, running out of memory)
and the queue of steps whose loss is read late."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
import torch

from sslstudio.config import RunConfig
from sslstudio.core.events import StepLogged
from sslstudio.core.methods.base import Batch
from sslstudio.core.train.plan import Plan, revise
from sslstudio.core.train.resizing import steps_left
from sslstudio.errors import ConfigError, DivergedError


def optimise(
    method, opt, scaler, views, idx, amp_dtype, device, sync=None
) -> tuple[torch.Tensor, dict]:
    """Forward, backward and optimizer step on ``views``; returns (loss, extras) unread.
    ``sync(method)`` runs between backward and step (averaging gradients over ranks)."""
    method.train()
    with torch.autocast(device.type, dtype=amp_dtype) if amp_dtype else contextlib.nullcontext():
        loss, extra = method.training_step(Batch(views, torch.from_numpy(idx)))
    opt.zero_grad(set_to_none=True)
    (scaler.scale(loss) if scaler is not None else loss).backward()
    if sync is not None:
        sync(method)
    if scaler is not None:
        scaler.step(opt)
        scaler.update()
    else:
        opt.step()
    return loss, extra


def is_out_of_memory(exc: BaseException) -> bool:
    """Only the allocator's own error counts: other RuntimeErrors are never taken for OOM."""
    return isinstance(exc, torch.OutOfMemoryError)


def out_of_memory_plan(plan: Plan, step: int, opt, device: torch.device) -> Plan:
    """Half the batch after an out-of-memory step (called *outside* the ``except`` block, so
    the failed step's tensors are already freed); the learning rate follows the linear rule."""
    opt.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.empty_cache()
    bs = plan.batch_size
    if bs <= 2:
        raise ConfigError(
            f"out of memory on {device.type} even at batch size {bs}, the smallest a "
            "self-supervised step can use: choose a smaller backbone or image size, or train on "
            "the CPU"
        )
    return revise(plan, step, f"out of memory at batch {bs}", batch_size=bs // 2)


def settle_lag(device: torch.device) -> int:
    """Steps left unread on the device: 1 on a GPU (overlap), 0 where every op is synchronous."""
    return 1 if device.type == "cuda" else 0


def amp_dtype(cfg: RunConfig, device: torch.device) -> torch.dtype | None:
    if not cfg.amp or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


class Pending(NamedTuple):
    """A step queued on the device whose loss is not read yet."""

    step: int
    epoch: int
    loss: torch.Tensor
    extra: dict
    lr: float
    t_start: float
    t_data: float


class StepQueue:
    """Steps queued on the device, read ``lag`` steps late: reading a loss waits for the device,
    so on a GPU the newest step stays unread while the CPU prepares the next batch and its views.
    Reading a step logs it (``StepLogged``) and times it."""

    def __init__(self, lag: int, log) -> None:
        self.lag, self.log = lag, log
        self.pending: list[Pending] = []
        self.epoch_losses: list[float] = []
        self.step_time: float | None = None
        self.last_loss = float("nan")
        self.settled_at = time.perf_counter()

    def settle(self, keep: int, plan: Plan, sizes: np.ndarray, final: int) -> Iterator[StepLogged]:
        """Read queued steps until ``keep`` are left; ``sizes`` and ``final`` (the full image
        size) price the steps to come for the time left."""
        while len(self.pending) > keep:
            p = self.pending.pop(0)
            self.last_loss = loss = p.loss.item()
            if not math.isfinite(loss):
                raise DivergedError(p.step, loss)
            now = time.perf_counter()
            dt = now - max(p.t_start, self.settled_at)
            self.settled_at = now
            self.step_time = dt if self.step_time is None else 0.9 * self.step_time + 0.1 * dt
            self.epoch_losses.append(loss)
            ev = StepLogged(
                step=p.step,
                epoch=p.epoch,
                samples_seen=(p.step + 1) * plan.batch_size,
                loss=loss,
                lr=p.lr,
                images_per_s=plan.batch_size / dt,
                data_wait=min(1.0, p.t_data / dt),
                eta_s=self.step_time * steps_left(sizes, p.step, plan.total_steps, final),
                extra={k: float(v) for k, v in p.extra.items()},
            )
            self.log.write_event(ev)
            yield ev

    def epoch_mean(self) -> float:
        """The mean loss of the epoch's steps read so far; the next epoch starts empty."""
        mean = float(np.mean(self.epoch_losses)) if self.epoch_losses else float("nan")
        self.epoch_losses = []
        return mean
