"""NT-Xent: the normalised temperature-scaled cross-entropy of SimCLR.

"We randomly sample a minibatch of N examples and define the contrastive prediction task on
pairs of augmented examples derived from the minibatch, resulting in 2N data points. [...] we
treat the other 2(N - 1) augmented examples within a minibatch as negative examples."

- [0] SimCLR, Chen et al. 2020, https://arxiv.org/abs/2002.05709
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class NTXentLoss(nn.Module):
    """Args: temperature τ > 0. Raises ``ValueError`` otherwise."""

    def __init__(self, temperature: float = 0.5) -> None:
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature

    def forward(self, z0: Tensor, z1: Tensor) -> Tensor:
        """Args: z0, z1 ``(N, D)`` projections of two views of the same N images. Returns a scalar."""
        if z0.shape != z1.shape or z0.ndim != 2:
            raise ValueError(
                f"z0 and z1 must both be (N, D), got {tuple(z0.shape)} and {tuple(z1.shape)}"
            )
        n = z0.shape[0]
        z = F.normalize(torch.cat([z0, z1]).float(), dim=1)  # (2N, D) on the unit sphere
        sim = z @ z.T / self.temperature  # (2N, 2N) cosine similarities / τ
        sim.fill_diagonal_(float("-inf"))  # a view is never its own negative
        # the positive of row i is its other view: i + N for the first half, i - N for the second
        # row i's positive is i + N (first half) or i - N (second half); made on the device: a
        # copy from host memory would wait for the GPU to finish everything queued before it
        target = (torch.arange(2 * n, device=z.device) + n) % (2 * n)
        return F.cross_entropy(sim, target)
