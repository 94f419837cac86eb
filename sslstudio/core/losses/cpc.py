"""CPC v2: predict the embeddings of patches further down the image; InfoNCE against the rest.

"a masked convolutional network is then applied to the grid of feature vectors. The masks are
such that the receptive field of each resulting context vector c_{i,j} only includes feature
vectors that lie above it in the image"; patches k rows below are predicted linearly from it, and
"The negative samples {z_l} are taken from other locations in the image and other images in the
mini-batch." InfoNCE is the cross-entropy of picking the true patch among all of the batch's.

- [0] CPC v2, Hénaff et al. 2019, https://arxiv.org/abs/1905.09272 (sec. 2)
- [1] CPC, van den Oord, Li, Vinyals 2018, https://arxiv.org/abs/1807.03748
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class CPCLoss(nn.Module):
    """InfoNCE over row-ahead predictions.

    Args:
        steps: how many rows ahead the predictions reach (one prediction map per step).

    Raises:
        ValueError: for fewer than 1 step.
    """

    def __init__(self, steps: int = 3) -> None:
        super().__init__()
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        self.steps = steps

    def forward(
        self,
        preds: list[Tensor],
        z: Tensor,
        gather: Callable[[Tensor], tuple[Tensor, int]] | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Args:
            preds: ``steps`` maps ``(B, D, G, G)``; ``preds[k-1][:, :, r, c]`` predicts
                ``z[:, :, r + k, c]``.
            z: ``(B, D, G, G)`` patch embeddings.
            gather: under ``--distributed``, every rank's rows (with gradients) and where this
                rank's start: the candidates are then the patches of the global batch.

        Returns the mean InfoNCE loss over steps and the share of predictions whose true patch
        scored highest (a detached scalar).
        """
        if len(preds) != self.steps:
            raise ValueError(f"expected {self.steps} prediction maps, got {len(preds)}")
        b, d, g, _ = z.shape
        if self.steps >= g:
            raise ValueError(f"a {g}x{g} patch grid leaves no target {self.steps} rows ahead")
        cand = z.permute(0, 2, 3, 1).reshape(-1, d).float()  # (B*G*G, D): row (b*G + r)*G + c
        at = 0  # where this rank's patches start among the candidates
        if gather is not None:
            cand, at = gather(cand)
        ids = torch.arange(at, at + b * g * g, device=z.device).view(b, g, g)
        losses, hits, count = [], z.new_zeros(()), 0
        for k, p in enumerate(preds, start=1):
            q = p[:, :, : g - k].permute(0, 2, 3, 1).reshape(-1, d).float()  # (B*(G-k)*G, D)
            target = ids[:, k:].reshape(-1)  # (B*(G-k)*G,): the patch k rows below each context
            logits = q @ cand.T  # (B*(G-k)*G, B*G*G): every patch of the batch is a candidate
            losses.append(F.cross_entropy(logits, target))
            hits = hits + (logits.argmax(dim=1) == target).sum().detach()
            count += target.numel()
        return torch.stack(losses).mean(), hits / count
