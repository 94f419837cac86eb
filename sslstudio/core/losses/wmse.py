"""W-MSE: whiten each view's embeddings, then pull the two views together.

"we propose [...] a whitening operation [...] Whitening(V) = W_V (V − μ_V) [...] W_V is such
that W_Vᵀ W_V = Σ_V⁻¹ [...] computed using the Cholesky decomposition" (sec. 3). Whitening
scatters the batch over the unit sphere, so the positives cannot all collapse to one point.
The batch is cut into sub-batches of ``w_size`` (>= 2 × the embedding width, so each covariance
is well estimated) and each view of each sub-batch is whitened on its own (sec. 3.1).

- [0] W-MSE, Ermolov, Siarohin, Sangineto, Sebe 2021, https://arxiv.org/abs/2007.06346
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def whiten(x: Tensor, eps: float = 0.0) -> Tensor:
    """``(N, D)`` rows of ``x`` ``(N, D)`` centred and whitened: their covariance is the identity.

    With ``eps`` > 0 the covariance is shrunk towards a multiple of the identity first,
    ``(1 − eps) Σ + eps (tr Σ / D) I`` (scale-free), which keeps the Cholesky factor finite when
    N <= D; the output is then only near-white.
    """
    # float32 even under autocast: a Cholesky factor of a bf16 covariance is not usable
    with torch.autocast(x.device.type, enabled=False):
        n, d = x.shape
        xc = x.float() - x.float().mean(dim=0)
        cov = xc.T @ xc / (n - 1)  # (D, N) @ (N, D) -> (D, D)
        cov = (1 - eps) * cov + eps * (torch.trace(cov) / d) * torch.eye(d, device=x.device)
        chol, _ = torch.linalg.cholesky_ex(cov)  # cov = L Lᵀ; _ex: no device sync to check it
        # W = L⁻¹ whitens: (L⁻¹ xcᵀ)ᵀ has covariance L⁻¹ Σ L⁻ᵀ = I
        return torch.linalg.solve_triangular(chol, xc.T, upper=False).T  # (D, N) -> (N, D)


class WMSELoss(nn.Module):
    """Args:
        w_size: sub-batch size of one whitening (capped by the batch), >= 2.
        w_iter: how many different splits of the batch into sub-batches to average, >= 1.
        eps: shrinkage of the covariance towards the identity, in [0, 1).

    Raises: ``ValueError`` naming the bad value.
    """

    def __init__(self, w_size: int = 64, w_iter: int = 1, eps: float = 1e-3) -> None:
        super().__init__()
        if w_size < 2:
            raise ValueError(f"w_size must be >= 2, got {w_size}")
        if w_iter < 1:
            raise ValueError(f"w_iter must be >= 1, got {w_iter}")
        if not 0 <= eps < 1:
            raise ValueError(f"eps must be in [0, 1), got {eps}")
        self.w_size, self.w_iter, self.eps = w_size, w_iter, eps

    def forward(self, z0: Tensor, z1: Tensor) -> Tensor:
        """Args: z0, z1 ``(N, D)`` embeddings of two views of the same N images, N >= 2."""
        if z0.shape != z1.shape or z0.ndim != 2 or z0.shape[0] < 2:
            raise ValueError(
                f"z0 and z1 must both be (N, D), N >= 2; got {tuple(z0.shape)} and "
                f"{tuple(z1.shape)}"
            )
        n = z0.shape[0]
        groups = max(1, n // min(self.w_size, n))
        total = z0.new_zeros((), dtype=torch.float32)
        for i in range(self.w_iter):
            # the batch is already a random draw, so a fixed split per iteration is as good as
            # the paper's fresh permutation, and leaves the global RNG (and exact resume) alone
            perm = torch.randperm(n, generator=torch.Generator().manual_seed(i)).to(z0.device)
            for idx in torch.tensor_split(perm, groups):  # groups of >= w_size rows
                w0 = F.normalize(whiten(z0[idx], self.eps), dim=1)
                w1 = F.normalize(whiten(z1[idx], self.eps), dim=1)
                total = total + (2 - 2 * (w0 * w1).sum(dim=1)).sum()
        return total / (n * self.w_iter)
