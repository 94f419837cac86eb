"""MAE: reconstruct the pixels of masked patches from the visible ones.

"Our loss function computes the mean squared error (MSE) between the reconstructed and original
images in the pixel space. We compute the loss only on masked patches [...]. We also study a
variant whose reconstruction target is the normalized pixel values of each masked patch [...]
Using normalized pixels as the reconstruction target improves representation quality."

- [0] MAE, He et al. 2021, https://arxiv.org/abs/2111.06377 (sec. 3)
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def patchify(images: Tensor, patch: int) -> Tensor:
    """``(B, C, H, W)`` -> ``(B, N, patch*patch*C)``, patches in row-major grid order (the
    ViT's token order); rows/columns beyond a whole number of patches are dropped, as the
    patch embedding's strided convolution drops them."""
    b, c, h, w = images.shape
    gh, gw = h // patch, w // patch
    x = images[:, :, : gh * patch, : gw * patch].reshape(
        b, c, gh, patch, gw, patch
    )  # (B, C, gh, p, gw, p)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(b, gh * gw, patch * patch * c)  # (B, N, p*p*C)


def random_masking(noise: Tensor, mask_ratio: float) -> tuple[Tensor, Tensor]:
    """Per-sample random masking: the patches with the lowest noise stay visible.

    Args:
        noise: ``(B, N)`` uniform noise (drawn by the caller, so masks are reproducible).
        mask_ratio: share of patches hidden; ``int(N * (1 - ratio))`` stay visible, at least 1
            and at most N - 1.

    Returns:
        ``ids_keep`` ``(B, n_keep)`` indices of visible patches and ``mask`` ``(B, N)`` with
        1 for hidden patches, 0 for visible ones.
    """
    if not 0 < mask_ratio < 1:
        raise ValueError(f"mask_ratio must be in (0, 1), got {mask_ratio}")
    b, n = noise.shape
    n_keep = min(n - 1, max(1, int(n * (1 - mask_ratio))))
    ids_keep = torch.argsort(noise, dim=1)[:, :n_keep]  # (B, n_keep)
    mask = torch.ones(b, n, device=noise.device).scatter_(1, ids_keep, 0.0)  # (B, N)
    return ids_keep, mask


class MAELoss(nn.Module):
    """Mean squared error on hidden patches only.

    Args:
        norm_pix: normalise each target patch by its own mean and variance (paper's default
            for its best results).
        eps: added to the variance before the square root.

    Raises:
        ValueError: for a non-positive eps.
    """

    def __init__(self, norm_pix: bool = True, eps: float = 1e-6) -> None:
        super().__init__()
        if eps <= 0:
            raise ValueError(f"eps must be > 0, got {eps}")
        self.norm_pix, self.eps = norm_pix, eps

    def forward(self, pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
        """Args: pred, target ``(B, N, P)`` patches; mask ``(B, N)``, 1 = hidden. Returns a
        scalar."""
        target = target.float()
        if self.norm_pix:
            mean = target.mean(dim=-1, keepdim=True)  # (B, N, 1)
            var = target.var(dim=-1, keepdim=True)
            target = (target - mean) / (var + self.eps).sqrt()
        per_patch = ((pred.float() - target) ** 2).mean(dim=-1)  # (B, N)
        return (per_patch * mask).sum() / mask.sum()
