"""Colourisation as classification over quantised ab colours, with soft-encoded targets.

"we quantize the ab output space into bins with grid size 10 and keep the Q = 313 values which
are in-gamut [...] we find the 5-nearest neighbors to [each ground truth ab value] in the output
space and weight them proportionally to their distance from the ground truth using a Gaussian
kernel with σ = 5." Predicting a distribution rather than regressing ab avoids the desaturated,
averaged colours an L2 loss produces.

- [0] Zhang, Isola, Efros, "Colorful Image Colorization", ECCV 2016,
https://arxiv.org/abs/1603.08511
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor, nn

from sslstudio.core.transforms.lab import rgb_to_lab


@functools.lru_cache(maxsize=4)
def ab_gamut_bins(grid: float = 10.0, samples: int = 48) -> Tensor:
    """``(Q, 2)`` centres of the ``grid``-sized ab bins that some sRGB colour falls into.

    The sRGB cube is sampled on a ``samples``^3 lattice, converted to Lab, and each ab value is
    rounded to the nearest multiple of ``grid``; the distinct results are the bins. Computed once
    per ``grid`` (about 0.1 s). Returns a CPU tensor; do not modify it.
    """
    if grid <= 0:
        raise ValueError(f"grid must be > 0, got {grid}")
    v = torch.linspace(0, 1, samples)
    rgb = torch.stack(torch.meshgrid(v, v, v, indexing="ij")).reshape(1, 3, -1, 1)  # (1, 3, M, 1)
    ab = rgb_to_lab(rgb)[0, 1:, :, 0].T  # (M, 2)
    return torch.unique(torch.round(ab / grid), dim=0) * grid  # (Q, 2)


def soft_targets(
    ab: Tensor, bins: Tensor, neighbours: int = 5, sigma: float = 5.0
) -> tuple[Tensor, Tensor]:
    """Soft encoding of ab values: the ``neighbours`` nearest bins with Gaussian weights.

    Args: ab ``(P, 2)``; bins ``(Q, 2)``. Returns bin indices ``(P, n)`` and weights ``(P, n)``
    summing to 1 per row.
    """
    d2 = torch.cdist(ab.float(), bins) ** 2  # (P, Q) squared distances
    d2_near, idx = d2.topk(min(neighbours, bins.shape[0]), dim=1, largest=False)  # (P, n)
    return idx, torch.softmax(-d2_near / (2 * sigma**2), dim=1)


class ColorizationLoss(nn.Module):
    """Cross-entropy between predicted bin distributions and soft-encoded true colours.

    Args:
        grid: ab bin size (paper: 10). neighbours, sigma: soft encoding (paper: 5 and 5).

    Raises:
        ValueError: for a non-positive grid or sigma, or fewer than 1 neighbour.
    """

    def __init__(self, grid: float = 10.0, neighbours: int = 5, sigma: float = 5.0) -> None:
        super().__init__()
        if sigma <= 0:
            raise ValueError(f"sigma must be > 0, got {sigma}")
        if neighbours < 1:
            raise ValueError(f"neighbours must be >= 1, got {neighbours}")
        self.register_buffer("bins", ab_gamut_bins(grid).clone(), persistent=False)  # (Q, 2)
        self.neighbours, self.sigma = neighbours, sigma

    @property
    def num_bins(self) -> int:
        return self.bins.shape[0]

    def forward(self, logits: Tensor, ab: Tensor) -> Tensor:
        """Args: logits ``(B, Q, h, w)``; ab ``(B, 2, h, w)`` true colours at the same size."""
        q = logits.shape[1]
        ab_flat = ab.permute(0, 2, 3, 1).reshape(-1, 2)  # (P, 2), P = B*h*w
        idx, weight = soft_targets(ab_flat, self.bins, self.neighbours, self.sigma)
        log_p = (
            torch.log_softmax(logits.float(), dim=1).permute(0, 2, 3, 1).reshape(-1, q)
        )  # (P, Q)
        return -(weight * log_p.gather(1, idx)).sum(dim=1).mean()
