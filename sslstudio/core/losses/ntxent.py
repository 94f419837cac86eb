"""NT-Xent: the normalised temperature-scaled cross-entropy of SimCLR.

"We randomly sample a minibatch of N examples and define the contrastive prediction task on
pairs of augmented examples derived from the minibatch, resulting in 2N data points. [...] we
treat the other 2(N - 1) augmented examples within a minibatch as negative examples."

- [0] SimCLR, Chen et al. 2020, https://arxiv.org/abs/2002.05709
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Gather = Callable[[Tensor], tuple[Tensor, int]]


class NTXentLoss(nn.Module):
    """Args: temperature τ > 0. Raises ``ValueError`` otherwise."""

    def __init__(self, temperature: float = 0.5) -> None:
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature

    def forward(self, z0: Tensor, z1: Tensor, gather: Gather | None = None) -> Tensor:
        """Args: z0, z1 ``(N, D)`` projections of two views of the same N images; ``gather``
        (under ``--distributed``) returns every rank's rows and where this rank's start, so the
        negatives are the whole global batch. Returns a scalar: the mean over this rank's 2N
        rows."""
        if z0.shape != z1.shape or z0.ndim != 2:
            raise ValueError(
                f"z0 and z1 must both be (N, D), got {tuple(z0.shape)} and {tuple(z1.shape)}"
            )
        n = z0.shape[0]
        a = F.normalize(torch.cat([z0, z1]).float(), dim=1)  # (2N, D) on the unit sphere
        if gather is None:
            g0, g1, offset = a[:n], a[n:], 0
        else:
            (g0, offset), (g1, _) = gather(a[:n]), gather(a[n:])
        m = g0.shape[0]  # images in the global batch
        sim = a @ torch.cat([g0, g1]).T / self.temperature  # (2N, 2M) cosine similarities / τ
        # row i (view 0 of image i) has its positive at M + i, itself at i; rows of view 1 the
        # other way round. Made on the device: a copy from host memory would wait for the GPU
        rows = torch.arange(2 * n, device=a.device)
        image = rows % n + offset
        first = rows < n
        own = torch.where(first, image, image + m)
        sim[rows, own] = float("-inf")  # a view is never its own negative
        return F.cross_entropy(sim, torch.where(first, image + m, image))
