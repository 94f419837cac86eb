"""VICReg: invariance between views, plus variance and covariance regularisers on each view.

"ℓ(Z, Z′) = λ s(Z, Z′) + μ [v(Z) + v(Z′)] + ν [c(Z) + c(Z′)]" (eq. 6), with
v(Z) = 1/d Σⱼ max(0, γ − √(Var(zʲ) + ε)) (eq. 1-2) and c(Z) = 1/d Σ_{i≠j} C(Z)ᵢⱼ² (eq. 4);
λ = μ = 25, ν = 1, γ = 1, ε = 10⁻⁴ in the paper.

- [0] VICReg, Bardes, Ponce, LeCun 2022, https://arxiv.org/abs/2105.04906
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _check(z: Tensor) -> None:
    if z.ndim != 2 or z.shape[0] < 2:
        raise ValueError(f"embeddings must be (N, D) with N >= 2, got {tuple(z.shape)}")


def invariance_term(z0: Tensor, z1: Tensor) -> Tensor:
    """Mean squared difference of matching rows of ``z0`` and ``z1`` ``(N, D)``."""
    if z0.shape != z1.shape:
        raise ValueError(
            f"z0 and z1 must have one shape, got {tuple(z0.shape)} and {tuple(z1.shape)}"
        )
    return F.mse_loss(z0.float(), z1.float())


def variance_term(z: Tensor, std_target: float = 1.0, eps: float = 1e-4) -> Tensor:
    """Hinge on each dimension's std over the batch: 0 once every std reaches ``std_target``."""
    _check(z)
    std = torch.sqrt(z.float().var(dim=0) + eps)  # (D,)
    return F.relu(std_target - std).mean()


def covariance_term(z: Tensor) -> Tensor:
    """Sum of squared off-diagonal covariances over D: 0 for decorrelated dimensions."""
    _check(z)
    n, d = z.shape
    zc = z.float() - z.float().mean(dim=0)
    with torch.autocast(z.device.type, enabled=False):  # float32 even under autocast
        cov = zc.T @ zc / (n - 1)  # (D, N) @ (N, D) -> (D, D)
    return (cov.pow(2).sum() - torch.diagonal(cov).pow(2).sum()) / d


class VICRegLoss(nn.Module):
    """Args: the weights λ (invariance), μ (variance), ν (covariance), all >= 0; the std
    target γ > 0 and ε > 0 of the variance term.

    Raises: ``ValueError`` naming the first bad value.
    """

    def __init__(
        self,
        invariance: float = 25.0,
        variance: float = 25.0,
        covariance: float = 1.0,
        std_target: float = 1.0,
        eps: float = 1e-4,
    ) -> None:
        super().__init__()
        for name, value in (
            ("invariance", invariance),
            ("variance", variance),
            ("covariance", covariance),
        ):
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"{name} weight must be >= 0 and finite, got {value}")
        if not std_target > 0:
            raise ValueError(f"std_target must be > 0, got {std_target}")
        if not eps > 0:
            raise ValueError(f"eps must be > 0, got {eps}")
        self.weights = (invariance, variance, covariance)
        self.std_target, self.eps = std_target, eps

    def forward(self, z0: Tensor, z1: Tensor) -> Tensor:
        lam, mu, nu = self.weights
        var = variance_term(z0, self.std_target, self.eps) + variance_term(
            z1, self.std_target, self.eps
        )
        return (
            lam * invariance_term(z0, z1)
            + mu * var
            + nu * (covariance_term(z0) + covariance_term(z1))
        )
