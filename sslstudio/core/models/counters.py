"""A step counter that checkpoints with a method and costs no device sync to read.

Methods whose behaviour depends on the step (SwAV's frozen prototypes, DINO's teacher
temperature, DeepCluster's re-clustering, MAE's masks) need it inside ``training_step``, which
the trainer calls without a step number. A buffer makes it resume exactly; the Python mirror
avoids reading a GPU tensor every step (the trainer allows one sync per step, for the loss).
"""

from __future__ import annotations

import torch
from torch import nn


class StepCounter(nn.Module):
    """Steps finished so far: ``int(counter)`` reads it, ``counter.set(n)`` writes it."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("value", torch.zeros((), dtype=torch.long))
        self._mirror: int | None = 0

    def __int__(self) -> int:
        if self._mirror is None:  # first read after a checkpoint was loaded: one sync
            self._mirror = int(self.value.item())
        return self._mirror

    def set(self, n: int) -> None:
        self.value.fill_(n)
        self._mirror = n

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._mirror = None
