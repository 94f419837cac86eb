"""Schedules as precomputed arrays (DINO's shape): the GUI can plot them before step 0."""

from __future__ import annotations

import math

import numpy as np

# Warm-up under a time limit, as a share of the planned steps: a cold start at a high rate
# collapses a small folder. Here (torch-free) so the window can draw the plan.
WARMUP_SHARE = 0.05


def cosine_schedule(
    peak: float, final: float, total_steps: int, warmup_steps: int = 0, start: float = 0.0
) -> np.ndarray:
    """Linear warm-up from ``start`` to ``peak``, then half a cosine down to ``final``.

    Returns:
        ``(total_steps,)`` float64, one value per step; the last step lands exactly on ``final``.
    """
    if total_steps <= 0:
        raise ValueError(f"total_steps must be > 0, got {total_steps}")
    warmup_steps = max(0, min(warmup_steps, total_steps))
    warm = np.linspace(start, peak, warmup_steps, endpoint=False)
    n = total_steps - warmup_steps
    t = np.arange(n) / max(1, n - 1)
    cos = final + 0.5 * (peak - final) * (1 + np.cos(math.pi * t))
    return np.concatenate([warm, cos])


def scaled_lr(base_lr: float, batch_size: int) -> float:
    """Linear scaling rule (Goyal et al. 2017): ``base_lr`` is quoted for a batch of 256."""
    return base_lr * batch_size / 256
