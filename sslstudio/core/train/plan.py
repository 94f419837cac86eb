"""The run's plan: what step k means (batch, place in the data order, learning rate).

A plan is a frozen :class:`Plan`, stored in every checkpoint as plain JSON (``to_dict``), so a
resume follows it exactly. Things that change it during a run (the folder changed, the GPU ran
out of memory, the time budget needs fewer or more steps) append a *revision*; the schedule and
the data position are always recomputed from the plan and its revisions, so a resumed run lands
on the same numbers.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from sslstudio.config import RunConfig
from sslstudio.core.train.schedules import cosine_schedule, scaled_lr
from sslstudio.errors import ConfigError


@dataclass(frozen=True)
class Revision:
    """The plan from ``at_step`` on, and why it changed."""

    at_step: int
    reason: str
    num_images: int
    batch_size: int
    total_steps: int | None = None  # None: as long as the schedule it revises
    lr_scale: float = 1.0
    epoch_base: int | None = None  # set when the batch or the folder changed: a fresh epoch

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON with the dict format's keys (``epoch_base`` only where it is set)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> Revision:
        return cls(**_known(cls, row))


@dataclass(frozen=True)
class Plan:
    """Batch, epoch length, length and peak rate of a run; ``revisions`` change them mid-run.
    ``initial_*`` hold the values before the first revision (None while there is none)."""

    batch_size: int
    steps_per_epoch: int
    total_steps: int
    num_images: int
    peak_lr: float
    warmup_steps: int
    revisions: tuple[Revision, ...] = ()
    initial_total_steps: int | None = None
    initial_peak_lr: float | None = None

    @property
    def first_total_steps(self) -> int:
        """The run's length before any revision: the original schedule's."""
        return self.total_steps if self.initial_total_steps is None else self.initial_total_steps

    @property
    def first_peak_lr(self) -> float:
        return self.peak_lr if self.initial_peak_lr is None else self.initial_peak_lr

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON for checkpoints and the metrics log: the dict format the plan had before
        it was typed (``initial_*`` only after a revision), so older versions read it too."""
        row = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        row["revisions"] = [r.to_dict() for r in self.revisions]
        return {k: v for k, v in row.items() if v is not None}

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> Plan:
        """A plan from ``to_dict``'s JSON, or from a checkpoint written when plans were dicts."""
        known = _known(cls, row)
        known["revisions"] = tuple(Revision.from_dict(r) for r in row.get("revisions", ()))
        return cls(**known)


def _known(cls, row: dict[str, Any]) -> dict[str, Any]:
    # keys this version does not know (a checkpoint from a newer one) are left out, not fatal
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in row.items() if k in names}


def make_plan(cfg: RunConfig, num_images: int, multiple: int = 1) -> Plan:
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
    return Plan(
        batch_size=batch,
        steps_per_epoch=steps_per_epoch,
        total_steps=total,
        num_images=num_images,
        peak_lr=scaled_lr(cfg.optim.lr, batch),
        warmup_steps=int(round(cfg.optim.warmup_epochs * steps_per_epoch)),
    )


def resumed_plan(
    saved: dict[str, Any], step: int, same_folder: bool, num_images: int
) -> tuple[Plan, Plan, str]:
    """(the plan to train on, the checkpoint's plan, a notice) on resuming at ``step`` from a
    checkpoint whose plan is ``saved`` (JSON); a changed folder revises the plan from there."""
    plan = Plan.from_dict(saved)
    if same_folder and plan.num_images == num_images:
        return plan, plan, ""
    notice = (
        f"the folder changed since this checkpoint ({plan.num_images} -> {num_images} usable "
        "images): training continues on the folder as it is now; the data order differs from "
        "an uninterrupted run"
    )
    n, total = num_images, plan.total_steps
    return revise(plan, step, "folder changed", num_images=n, total_steps=total), plan, notice


def position(plan: Plan, step: int) -> tuple[int, int]:
    """``(epoch, data_step)`` of ``step``: the loader reads batch ``data_step % steps_per_epoch``
    of epoch ``data_step // steps_per_epoch``. A revision that changes the batch starts a fresh
    epoch, so no image is skipped or read twice within one."""
    base_step, base_epoch = 0, 0
    for rev in plan.revisions:
        if rev.epoch_base is not None:
            base_step, base_epoch = rev.at_step, rev.epoch_base
    data_step = base_epoch * plan.steps_per_epoch + (step - base_step)
    return data_step // plan.steps_per_epoch, data_step


def revise(
    plan: Plan,
    at_step: int,
    reason: str,
    *,
    num_images: int | None = None,
    batch_size: int | None = None,
    total_steps: int | None = None,
) -> Plan:
    """A new plan from ``at_step`` on. A new batch rescales the learning rate by the linear rule
    and, unless ``total_steps`` is given, keeps the number of images still to be seen."""
    old_bs, n = plan.batch_size, num_images or plan.num_images
    bs = min(batch_size or old_bs, n)
    if bs < 2:
        raise ConfigError(f"training needs at least 2 usable images, found {n}")
    remaining = plan.total_steps - at_step
    if total_steps is None:
        total_steps = at_step + max(1, math.ceil(remaining * old_bs / bs))
    fresh_epoch = bs != old_bs or n != plan.num_images
    rev = Revision(
        at_step=at_step,
        reason=reason,
        num_images=n,
        batch_size=bs,
        total_steps=int(total_steps),
        lr_scale=bs / old_bs,
        epoch_base=position(plan, at_step)[0] + 1 if fresh_epoch else None,
    )
    return dataclasses.replace(
        plan,
        revisions=(*plan.revisions, rev),
        initial_total_steps=plan.first_total_steps,
        initial_peak_lr=plan.first_peak_lr,
        num_images=n,
        batch_size=bs,
        total_steps=int(total_steps),
        peak_lr=plan.peak_lr * bs / old_bs,
        steps_per_epoch=max(1, n // bs) if fresh_epoch else plan.steps_per_epoch,
    )


def lr_schedule(plan: Plan, cfg: RunConfig) -> np.ndarray:
    """One learning rate per step: the original warm-up + cosine, with the part after each
    revision stretched or squeezed to its new length (so it always ends on its final value)."""
    peak0 = plan.first_peak_lr
    sched = cosine_schedule(
        peak0, peak0 * cfg.optim.min_lr_ratio, plan.first_total_steps, plan.warmup_steps
    )
    return follow_revisions(sched, plan, scale=True)


def progress(plan: Plan) -> np.ndarray:
    """Each step's place in the run, 0 at the first step to 1 at the last, following the plan's
    revisions as the learning rate does (a run cut short by its deadline still reaches 1)."""
    return follow_revisions(
        np.linspace(0.0, 1.0, max(1, plan.first_total_steps)), plan, scale=False
    )


def follow_revisions(sched: np.ndarray, plan: Plan, *, scale: bool) -> np.ndarray:
    """``sched`` (one value per step of the original plan) with the part after each revision
    stretched or squeezed to its new length; ``scale`` applies the revisions' lr scale."""
    for rev in plan.revisions:
        a = rev.at_step
        total = len(sched) if rev.total_steps is None else rev.total_steps
        factor = rev.lr_scale if scale else 1.0
        if total == len(sched) and factor == 1.0:
            continue
        tail = sched[a:] if a < len(sched) else sched[-1:]
        new_n = max(1, total - a)
        x_old = np.linspace(0.0, 1.0, len(tail)) if len(tail) > 1 else np.zeros(1)
        sched = np.concatenate(
            [sched[:a], np.interp(np.linspace(0.0, 1.0, new_n), x_old, tail) * factor]
        )
    return sched
