"""Collapse metrics on a fixed probe set: is the network still learning something?

- std x sqrt(d) of L2-normalised embeddings (SimSiam, Chen & He 2021, sec. 4.1): about 1 for
  spread-out embeddings, 0 when every image maps to the same point (complete collapse).
- RankMe (Garrido et al. 2023, https://arxiv.org/abs/2210.02885): exp of the entropy of the
  normalised singular values; drops to k when embeddings live in a k-dimensional subspace
  (dimensional collapse). Random networks already score high, so RankMe alone cannot say
  "worse than random init"; it only catches collapse.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

COLLAPSE_STD = 0.1  # below this std x sqrt(d) the embeddings have (nearly) collapsed to a point
RANK_SHARE = 0.05  # below this share of min(n, d) the embeddings have collapsed dimensionally


def std_sqrt_d(z: Tensor) -> float:
    """Mean per-dimension std of L2-normalised ``z`` ``(N, D)``, times sqrt(D)."""
    zn = F.normalize(z.float(), dim=1)
    return float(zn.std(dim=0).mean() * zn.shape[1] ** 0.5)


def rankme(z: Tensor, eps: float = 1e-7) -> float:
    """Effective rank of ``z`` ``(N, D)``: exp(entropy of singular values / their sum)."""
    s = torch.linalg.svdvals(z.double())
    p = s / s.sum().clamp(min=eps) + eps
    return float(torch.exp(-(p * torch.log(p)).sum()))


def collapse_warning(std: float, rank: float, n: int, d: int) -> str | None:
    """A user-facing warning, or None when the embeddings look healthy."""
    if std < COLLAPSE_STD:
        return f"complete collapse: all images map to nearly the same embedding (std x sqrt(d) = {std:.3f})"
    limit = max(2.0, RANK_SHARE * min(n, d))
    if rank < limit:
        return f"dimensional collapse: embeddings use about {rank:.1f} of {d} dimensions"
    return None
