"""The run's plan: what step k means (batch, place in the data order, learning rate).

A plan is plain JSON, stored in every checkpoint, so a resume follows it exactly. Things that
change it during a run (the folder changed, the GPU ran out of memory, the time budget needs
fewer or more steps) append a *revision*; the schedule and the data position are always
recomputed from the plan and its revisions, so a resumed run lands on the same numbers.
"""

from __future__ import annotations

import math

import numpy as np

from sslstudio.config import RunConfig
from sslstudio.errors import ConfigError
from sslstudio.core.train.schedules import cosine_schedule, scaled_lr


def make_plan(cfg: RunConfig, num_images: int, multiple: int = 1) -> dict:
    """The plan of a new run on ``num_images`` usable images (batch a multiple of ``multiple``:
    the number of processes sharing it)."""
    batch = min(cfg.batch_size, num_images)
    batch -= batch % multiple
    if batch < 2:
        raise ConfigError(f"training needs at least 2 usable images, found {num_images}")
    steps_per_epoch = num_images // batch
    total = cfg.epochs * steps_per_epoch
    if cfg.max_steps:
        total = min(total, cfg.max_steps)
    return {
        "batch_size": batch,
        "steps_per_epoch": steps_per_epoch,
        "total_steps": total,
        "num_images": num_images,
        "peak_lr": scaled_lr(cfg.optim.lr, batch),
        "warmup_steps": int(round(cfg.optim.warmup_epochs * steps_per_epoch)),
        "revisions": [],
    }


def position(plan: dict, step: int) -> tuple[int, int]:
    """``(epoch, data_step)`` of ``step``: the loader reads batch ``data_step % steps_per_epoch``
    of epoch ``data_step // steps_per_epoch``. A revision that changes the batch starts a fresh
    epoch, so no image is skipped or read twice within one."""
    base_step, base_epoch = 0, 0
    for rev in plan.get("revisions", []):
        if "epoch_base" in rev:
            base_step, base_epoch = rev["at_step"], rev["epoch_base"]
    data_step = base_epoch * plan["steps_per_epoch"] + (step - base_step)
    return data_step // plan["steps_per_epoch"], data_step


def revise(
    plan: dict,
    at_step: int,
    reason: str,
    *,
    num_images: int | None = None,
    batch_size: int | None = None,
    total_steps: int | None = None,
) -> dict:
    """A new plan from ``at_step`` on. A new batch rescales the learning rate by the linear rule
    and, unless ``total_steps`` is given, keeps the number of images still to be seen."""
    old_bs, n = plan["batch_size"], num_images or plan["num_images"]
    bs = min(batch_size or old_bs, n)
    if bs < 2:
        raise ConfigError(f"training needs at least 2 usable images, found {n}")
    remaining = plan["total_steps"] - at_step
    if total_steps is None:
        total_steps = at_step + max(1, math.ceil(remaining * old_bs / bs))
    rev = {
        "at_step": at_step,
        "reason": reason,
        "num_images": n,
        "batch_size": bs,
        "total_steps": int(total_steps),
        "lr_scale": bs / old_bs,
    }
    new = {
        **plan,
        "revisions": [*plan.get("revisions", []), rev],
        "initial_total_steps": plan.get("initial_total_steps", plan["total_steps"]),
        "initial_peak_lr": plan.get("initial_peak_lr", plan["peak_lr"]),
        "num_images": n,
        "batch_size": bs,
        "total_steps": int(total_steps),
        "peak_lr": plan["peak_lr"] * bs / old_bs,
    }
    if bs != old_bs or n != plan["num_images"]:
        rev["epoch_base"] = position(plan, at_step)[0] + 1
        new["steps_per_epoch"] = max(1, n // bs)
    return new


def lr_schedule(plan: dict, cfg: RunConfig) -> np.ndarray:
    """One learning rate per step: the original warm-up + cosine, with the part after each
    revision stretched or squeezed to its new length (so it always ends on its final value)."""
    total0 = plan.get("initial_total_steps", plan["total_steps"])
    peak0 = plan.get("initial_peak_lr", plan["peak_lr"])
    sched = cosine_schedule(peak0, peak0 * cfg.optim.min_lr_ratio, total0, plan["warmup_steps"])
    return follow_revisions(sched, plan, scale=True)


def progress(plan: dict) -> np.ndarray:
    """Each step's place in the run, 0 at the first step to 1 at the last, following the plan's
    revisions as the learning rate does (a run cut short by its deadline still reaches 1)."""
    total0 = plan.get("initial_total_steps", plan["total_steps"])
    return follow_revisions(np.linspace(0.0, 1.0, max(1, total0)), plan, scale=False)


def follow_revisions(sched: np.ndarray, plan: dict, *, scale: bool) -> np.ndarray:
    """``sched`` (one value per step of the original plan) with the part after each revision
    stretched or squeezed to its new length; ``scale`` applies the revisions' lr scale."""
    for rev in plan.get("revisions", []):
        a, total = rev["at_step"], rev.get("total_steps", len(sched))
        factor = rev.get("lr_scale", 1.0) if scale else 1.0
        if total == len(sched) and factor == 1.0:
            continue
        tail = sched[a:] if a < len(sched) else sched[-1:]
        new_n = max(1, total - a)
        x_old = np.linspace(0.0, 1.0, len(tail)) if len(tail) > 1 else np.zeros(1)
        sched = np.concatenate(
            [sched[:a], np.interp(np.linspace(0.0, 1.0, new_n), x_old, tail) * factor]
        )
    return sched
