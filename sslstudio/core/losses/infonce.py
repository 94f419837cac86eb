"""InfoNCE: each query must pick its own positive key out of a set of negatives.

"Contrastive learning [...] a contrastive loss function, called InfoNCE [...]:
L_q = −log exp(q·k₊/τ) / Σᵢ₌₀ᴷ exp(q·kᵢ/τ)" (MoCo, eq. 1). MoCo draws the K negatives from a
queue of past keys; MoCo v3 and NNCLR use the other keys of the batch.

- [0] MoCo, He et al. 2019, https://arxiv.org/abs/1911.05722
- [1] MoCo v3, Chen, Xie, He 2021, https://arxiv.org/abs/2104.02057
- [2] NNCLR, Dwibedi et al. 2021, https://arxiv.org/abs/2104.14548
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class InfoNCELoss(nn.Module):
    """Cross-entropy of cosine similarities over τ; the mean over queries.

    Args:
        temperature: τ > 0.

    Raises:
        ValueError: when τ is not > 0.
    """

    def __init__(self, temperature: float = 0.2) -> None:
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature

    def forward(
        self, q: Tensor, k: Tensor, negatives: Tensor | None = None, offset: int | None = None
    ) -> Tensor:
        """Args:
            q: ``(N, D)`` queries.
            k: ``(N, D)`` their positive keys (row i belongs to query i); with ``offset``,
                ``(M, D)`` keys of a larger batch (every rank's, gathered), where query i's key
                is row ``offset + i`` and the other rows are its negatives.
            negatives: ``(M, D)`` keys that match no query (MoCo's queue), or ``None`` to use
                the batch's other keys as negatives.
            offset: where the queries' own keys start in a gathered ``k`` (without
                ``negatives``); ``None``: ``k`` is the queries' own batch.

        Returns: the scalar loss, the mean over the N queries.
        """
        gathered = offset is not None and negatives is None
        fits = gathered and q.ndim == k.ndim == 2 and q.shape[1] == k.shape[1]
        if not (q.shape == k.shape and q.ndim == 2) and not (
            fits and k.shape[0] >= offset + len(q)
        ):
            raise ValueError(
                f"q and k must both be (N, D), or k (M, D) holding the queries' keys from "
                f"offset {offset}; got {tuple(q.shape)} and {tuple(k.shape)}"
            )
        if negatives is not None and (negatives.ndim != 2 or negatives.shape[1] != q.shape[1]):
            raise ValueError(f"negatives must be (M, {q.shape[1]}), got {tuple(negatives.shape)}")
        n = q.shape[0]
        # float32 logits even under autocast: bf16 would round cosines / τ to about 2 digits
        with torch.autocast(q.device.type, enabled=False):
            q = F.normalize(q.float(), dim=1)
            k = F.normalize(k.float(), dim=1)
            if negatives is None:
                logits = q @ k.T  # (N, M): query i against every key; its own at offset + i
                start = offset or 0
                target = torch.arange(start, start + n, device=q.device)
            else:
                pos = (q * k).sum(dim=1, keepdim=True)  # (N, 1)
                neg = q @ F.normalize(negatives.float(), dim=1).T  # (N, M)
                logits = torch.cat([pos, neg], dim=1)  # (N, 1 + M): the positive in column 0
                target = torch.zeros(n, dtype=torch.long, device=q.device)
            return F.cross_entropy(logits / self.temperature, target)
