"""Barlow Twins: make the cross-correlation of two views' embeddings the identity matrix.

"L_BT = Σᵢ (1 − Cᵢᵢ)² + λ Σᵢ Σ_{j≠i} Cᵢⱼ², [...] where C is the cross-correlation matrix computed
between the outputs of the two identical networks along the batch dimension" (eq. 1-2);
λ = 5·10⁻³ in the paper.

- [0] Barlow Twins, Zbontar et al. 2021, https://arxiv.org/abs/2103.03230
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def cross_correlation(z0: Tensor, z1: Tensor, eps: float = 1e-5) -> Tensor:
    """``(D, D)`` Pearson correlation of every column of ``z0`` with every column of ``z1``.

    Each column is centred and scaled by its (biased, batch-norm style) std, so identical views
    give exactly 1 on the diagonal.

    Args: z0, z1 ``(N, D)`` embeddings of two views of the same N images, N >= 2.
    """
    if z0.shape != z1.shape or z0.ndim != 2:
        raise ValueError(
            f"z0 and z1 must both be (N, D), got {tuple(z0.shape)} and {tuple(z1.shape)}"
        )
    if z0.shape[0] < 2:
        raise ValueError(f"a cross-correlation needs at least 2 samples, got {z0.shape[0]}")
    n = z0.shape[0]

    def standardise(z: Tensor) -> Tensor:
        z = z.float()
        return (z - z.mean(0)) / torch.sqrt(z.var(0, unbiased=False) + eps)

    with torch.autocast(z0.device.type, enabled=False):  # float32: c_ii sits just below 1
        return standardise(z0).T @ standardise(z1) / n  # (D, N) @ (N, D) -> (D, D)


class BarlowTwinsLoss(nn.Module):
    """Args: ``lambda_offdiag`` λ >= 0, the weight of redundancy reduction (off-diagonal terms).

    Raises: ``ValueError`` when λ is negative or not finite.
    """

    def __init__(self, lambda_offdiag: float = 5e-3) -> None:
        super().__init__()
        if not 0 <= lambda_offdiag < float("inf"):
            raise ValueError(f"lambda_offdiag must be >= 0 and finite, got {lambda_offdiag}")
        self.lambda_offdiag = lambda_offdiag

    def forward(self, z0: Tensor, z1: Tensor) -> Tensor:
        c = cross_correlation(z0, z1)  # (D, D)
        on_diag = torch.diagonal(c)  # (D,)
        invariance = (1 - on_diag).pow(2).sum()
        redundancy = c.pow(2).sum() - on_diag.pow(2).sum()
        return invariance + self.lambda_offdiag * redundancy
