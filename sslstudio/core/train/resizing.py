"""Progressive resizing: train early steps at a lower resolution, end at the full one.

A step's cost grows with the image's area, so low-resolution steps buy more passes over the
folder in the same time; the run ends at ``image_size`` so that the network (its batch-norm
statistics included) is tuned to the size it will embed at. The shape follows FFCV's ResNet
recipes: hold the small size for the first ``HOLD`` of the run, grow linearly until ``FULL``,
then train the rest at full size. Sizes are rounded to a quantum so that a GPU (and
``torch.compile``) sees a handful of shapes, not one per step.

The size of step k is a function of the plan alone (its place in the run, following the plan's
revisions like the learning rate), so a resumed run trains each step at the same size.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sslstudio.config import RunConfig
from sslstudio.core.train.plan import Plan, progress, revise

HOLD = 0.4  # share of the run at the smallest size
FULL = 0.85  # share of the run after which every step is at the full size
# a step's fixed cost (kernel launches, batch norm, the loss, the optimizer), as a share of a
# full-size step's; the rest scales with the image's area. Only a fallback: the planner times
# the ramp's two ends and the deadline learns each size's own time. On this 2-core CPU, ResNet-18,
# batch 128 (bench/quality.py --progressive-from): about 0.36 at 16-32 px, about 0 at 32-64 px.
FIXED_COST = 0.4


def quantum(image_size: int) -> int:
    """Rounding step for intermediate sizes: 4 px up to 64 px, 16 px up to 256, 32 px above."""
    return 4 if image_size <= 64 else 16 if image_size <= 256 else 32


def size_at(p: np.ndarray | float, start: int, final: int) -> np.ndarray:
    """Training size at run progress ``p`` (0..1) for a ramp from ``start`` to ``final`` px."""
    p = np.asarray(p, dtype=np.float64)
    ramp = np.clip((p - HOLD) / (FULL - HOLD), 0.0, 1.0)
    q = quantum(final)
    raw = start + ramp * (final - start)
    sizes = np.round(raw / q) * q
    return np.clip(sizes, start, final).astype(np.int64)


def size_schedule(plan: Plan, cfg: RunConfig) -> np.ndarray:
    """One training size per step of the plan: all ``image_size`` unless progressive resizing
    is on."""
    p = progress(plan)
    if not cfg.progressive_from:
        return np.full(len(p), cfg.image_size, dtype=np.int64)
    return size_at(p, cfg.progressive_from, cfg.image_size)


def relative_cost(sizes: np.ndarray | int, final: int) -> np.ndarray:
    """Estimated time of a step at each size, as a share of a full-size step's."""
    area = (np.asarray(sizes, dtype=np.float64) / final) ** 2
    return FIXED_COST + (1.0 - FIXED_COST) * area


def sizes_of_rest(plan: Plan, cfg: RunConfig) -> Callable[[int, int], np.ndarray] | None:
    """``sizes(at, end)``: the sizes of steps ``at``..``end - 1`` were ``plan`` revised at ``at``
    to end at ``end`` (None without progressive resizing: every step is alike)."""
    if not cfg.progressive_from:
        return None

    def sizes(at: int, end: int) -> np.ndarray:
        return size_schedule(revise(plan, at, "trial", total_steps=end), cfg)[at:end]

    return sizes


def steps_left(sizes: np.ndarray, s: int, total: int, final: int) -> float:
    """Steps after step ``s`` of ``total``, counted in steps of ``s``'s own cost."""
    if sizes[s] == final:  # sizes never shrink: every later step is at full size too
        return float(total - s - 1)
    later = relative_cost(sizes[s + 1 : total], final).sum()
    return float(later / relative_cost(int(sizes[s]), final))


def mean_cost(start: int, final: int, measured: dict[int, float] | None = None) -> float:
    """Average step cost over a whole progressive run relative to a full-size step (1.0 without
    resizing): from ``measured`` seconds by size where given, else from the cost model."""
    if not start:
        return 1.0
    sizes = size_at(np.linspace(0.0, 1.0, 1001), start, final)
    if measured:
        return float(
            np.mean([seconds_between(int(s), measured) for s in sizes])
            / seconds_between(final, measured)
        )
    return float(relative_cost(sizes, final).mean())


def seconds_between(size: int, measured: dict[int, float]) -> float:
    """Seconds of a step at ``size`` from steps timed at other sizes: linear in the image's area
    between the nearest two (beyond them, along the line of the last two; one: the cost model)."""
    if size in measured:
        return measured[size]
    known = sorted(measured)
    if len(known) == 1:
        (k,) = known
        return measured[k] * float(
            relative_cost(size, max(size, k)) / relative_cost(k, max(size, k))
        )
    i = min(max(int(np.searchsorted(known, size)), 1), len(known) - 1)
    a, b = known[i - 1], known[i]
    w = (size**2 - a**2) / (b**2 - a**2)
    return max(0.05 * measured[a], measured[a] + w * (measured[b] - measured[a]))
