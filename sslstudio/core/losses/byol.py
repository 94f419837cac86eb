"""Regression of one view's prediction onto the other view's (detached) projection.

BYOL: "we define the following mean squared error between the normalized predictions and target
projections, L = ‖q̄ − z̄′‖² = 2 − 2·⟨q, z′⟩ / (‖q‖·‖z′‖)" (sec. 3.1). SimSiam minimises the
negative cosine similarity D(p, z) = −p/‖p‖ · z/‖z‖ (eq. 1): the same quantity up to 2 − 2x.
Neither loss stops gradients itself: the method detaches its target branch, in plain sight.

- [0] BYOL, Grill et al. 2020, https://arxiv.org/abs/2006.07733
- [1] SimSiam, Chen & He 2021, https://arxiv.org/abs/2011.10566
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


def cosine(p: Tensor, z: Tensor) -> Tensor:
    """``(N,)`` cosine similarity of matching rows of ``p`` and ``z`` ``(N, D)``, in float32."""
    if p.shape != z.shape or p.ndim != 2:
        raise ValueError(f"p and z must both be (N, D), got {tuple(p.shape)} and {tuple(z.shape)}")
    return F.cosine_similarity(p.float(), z.float(), dim=1)


class NormalizedMSELoss(nn.Module):
    """BYOL's ``2 − 2 cos(p, z)``, the mean over the batch: 0 when aligned, 4 when opposite."""

    def forward(self, p: Tensor, z: Tensor) -> Tensor:
        return (2 - 2 * cosine(p, z)).mean()


class NegativeCosineLoss(nn.Module):
    """SimSiam's ``−cos(p, z)``, the mean over the batch: −1 when aligned, 1 when opposite."""

    def forward(self, p: Tensor, z: Tensor) -> Tensor:
        return -cosine(p, z).mean()
