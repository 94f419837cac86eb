"""Exponential moving averages of weights (BYOL, MoCo, DINO teachers) and their momentum schedule.

The momentum rises from ``base`` to ``final`` along a cosine (BYOL, sec. 3.2: "τ = 1 − (1 − τ_base)
· (cos(πk/K) + 1)/2"); it is precomputed per step so the GUI can plot it before training.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn


def momentum_schedule(base: float, final: float, total_steps: int) -> np.ndarray:
    """``(total_steps,)`` momentum per step, ``base`` at step 0 rising to ``final`` at the last
    step."""
    if not 0.0 <= base <= final <= 1.0:
        raise ValueError(f"momentum must satisfy 0 <= base <= final <= 1, got {base}, {final}")
    if total_steps <= 0:
        raise ValueError(f"total_steps must be > 0, got {total_steps}")
    k = np.arange(total_steps) / max(1, total_steps - 1)
    return final - (final - base) * (np.cos(math.pi * k) + 1) / 2


def momentum_at(base: float, final: float, step: int, total_steps: int) -> float:
    """The schedule's value at ``step`` without building the array (what ``on_step_end`` needs)."""
    k = min(max(step, 0), max(1, total_steps - 1)) / max(1, total_steps - 1)
    return final - (final - base) * (math.cos(math.pi * k) + 1) / 2


def copy_frozen(module: nn.Module) -> nn.Module:
    """A deep copy with gradients off: the starting point of a teacher / momentum encoder."""
    import copy

    twin = copy.deepcopy(module)
    for p in twin.parameters():
        p.requires_grad_(False)
    return twin


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """``target = m * target + (1 - m) * online`` for parameters; buffers (BN statistics) copied."""
    t_params = list(target.parameters())
    o_params = list(online.parameters())
    torch._foreach_mul_(t_params, momentum)
    torch._foreach_add_(t_params, o_params, alpha=1 - momentum)
    for tb, ob in zip(target.buffers(), online.buffers(), strict=True):
        tb.copy_(ob)


class MomentumSchedule(nn.Module):
    """The cosine momentum as a module whose position survives a checkpoint.

    The number of EMA updates done is a buffer, so a resumed run applies and reports the same
    momentum as an uninterrupted one. ``current()`` is the momentum the coming update will use.

    Args:
        base: momentum at the first step, in [0, 1].
        final: momentum at the last step, in [base, 1].

    Raises:
        ValueError: when ``0 <= base <= final <= 1`` does not hold.
    """

    def __init__(self, base: float, final: float) -> None:
        super().__init__()
        if not 0.0 <= base <= final <= 1.0:
            raise ValueError(f"momentum must satisfy 0 <= base <= final <= 1, got {base}, {final}")
        self.base, self.final = base, final
        self.total_steps = 1
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))
        self._updates: int | None = None  # host copy of ``updates``, read once after a (re)load
        self.register_load_state_dict_post_hook(lambda module, _keys: module._forget())

    def _forget(self) -> None:
        self._updates = None

    def start(self, total_steps: int) -> None:
        self.total_steps = max(1, total_steps)
        self._forget()

    def current(self) -> float:
        if self._updates is None:
            self._updates = int(self.updates)  # one device sync per run, at start or resume
        return momentum_at(self.base, self.final, self._updates, self.total_steps)

    def advance(self, step: int, total_steps: int) -> float:
        """The momentum for the update after ``step``; counts the update."""
        m = momentum_at(self.base, self.final, step, total_steps)
        self._updates = step + 1
        self.updates.fill_(step + 1)
        return m
