"""CPC v2: encode a grid of overlapping patches, predict lower rows from upper ones."""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from sslstudio.config import RunConfig, option
from sslstudio.core.losses.cpc import CPCLoss
from sslstudio.core.methods.base import Batch, Method, register
from sslstudio.core.models.backbones import Backbone
from sslstudio.core.models.groupnorm import batchnorm_to_groupnorm
from sslstudio.core.transforms.views import ViewSpec


@dataclass(frozen=True)
class CPCConfig:
    grid: int = option(7, "patches per image side (half-overlapping); paper: 7", 3, 16)
    pred_steps: int = option(
        3, "how many rows ahead to predict (must be < grid); paper: up to 5", 1, 15
    )
    context_dim: int = option(256, "width of the context network; paper: 256 bottleneck", 16, 4096)
    context_blocks: int = option(2, "residual blocks of masked convolutions", 1, 8)


def patch_grid(images: Tensor, grid: int) -> tuple[Tensor, int]:
    """Half-overlapping square patches: side ``2S / (grid + 1)``, stride half a side.

    Args: images ``(B, C, S, S)``. Returns ``(B*G*G, C, P, P)`` patches in row-major order per
    image and G, the patches per side (``grid``, or a little more when S does not divide evenly).
    """
    b, c, s, _ = images.shape
    side = max(1, 2 * s // (grid + 1))
    stride = max(1, side // 2)
    p = images.unfold(2, side, stride).unfold(3, side, stride)  # (B, C, G, G, P, P)
    g = p.shape[2]
    return p.permute(0, 2, 3, 1, 4, 5).reshape(b * g * g, c, side, side), g


class CausalConv(nn.Conv2d):
    """A 3x3 convolution padded on top only: output row r sees input rows r-2..r, never below."""

    def __init__(self, channels: int) -> None:
        super().__init__(channels, channels, kernel_size=3, padding=0)

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(F.pad(x, (1, 1, 2, 0)))  # (left, right, top, bottom)


class RowContext(nn.Module):
    """PixelCNN-like context network over a ``(B, D, G, G)`` grid: residual blocks of causal
    convolutions, so context row r depends only on rows <= r of the input."""

    def __init__(self, in_dim: int, dim: int, blocks: int) -> None:
        super().__init__()
        self.inp = nn.Conv2d(in_dim, dim, 1)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.ReLU(), CausalConv(dim), nn.ReLU(), CausalConv(dim))
            for _ in range(blocks)
        )

    def forward(self, z: Tensor) -> Tensor:
        c = self.inp(z)
        for block in self.blocks:
            c = c + block(c)
        return c  # (B, dim, G, G)


@register("cpc")
class CPC(Method):
    """Contrastive predictive coding, v2 [0].

    The chosen backbone is the patch encoder, with every BatchNorm swapped for GroupNorm:
    batch statistics would let a patch's embedding depend on the other patches of the batch —
    including its overlapping neighbours, the very targets it must predict — which leaks the
    answer (CPC v2 uses layer norm for this reason). Keeping the user's backbone keeps its size
    and export path; GroupNorm gives each patch its own statistics, as layer norm does.

    - [0] Hénaff et al., "Data-Efficient Image Recognition with Contrastive Predictive Coding",
      ICML 2020, https://arxiv.org/abs/1905.09272
    """

    Config = CPCConfig
    display_name = "CPC"
    distributed = True
    paper = "Hénaff et al. 2019, https://arxiv.org/abs/1905.09272"
    # lr 5e-4 rather than 2e-3: in an equal-time CPU run the larger step lost three quarters of
    # the features' dimensions within 26 steps (bench/methods.py, centred RankMe 182 -> 20 vs 52)
    optim_defaults = {"lr": 5e-4}
    paper_recipe = (
        "a very wide ResNet on 7×7 grids of 64 px tiles cut from 256 px crops, layer norm instead "
        "of batch norm, per-tile augmentation, hundreds of epochs on many accelerators"
    )
    summary = (
        "CPC cuts each image into a grid of overlapping tiles, describes every tile, and learns "
        "to predict the descriptions of tiles lower down from the tiles above, telling the true "
        "ones apart from tiles of other places and images. Predicting what comes next in the "
        "tissue teaches the network its structure. The whole-image feature is the average of "
        "the tile features. It is costly: every image goes through the network as 49 tiles, so "
        "a CPU takes a tenth of SimCLR's steps in the same time. Choose it for long GPU runs."
    )

    def __init__(self, backbone: Backbone, config: CPCConfig) -> None:
        super().__init__(backbone, config)
        if config.pred_steps >= config.grid:
            raise ValueError(
                f"pred_steps ({config.pred_steps}) must be smaller than grid ({config.grid})"
            )
        batchnorm_to_groupnorm(self.backbone)
        d = backbone.feature_dim
        self.context = RowContext(d, config.context_dim, config.context_blocks)
        # one linear map W_k per step: "the predictions are made linearly" (1x1 convolutions)
        self.predictors = nn.ModuleList(
            nn.Conv2d(config.context_dim, d, 1) for _ in range(config.pred_steps)
        )
        self.criterion = CPCLoss(config.pred_steps)

    def view_specs(self, cfg: RunConfig) -> list[ViewSpec]:
        return [ViewSpec(cfg.augment, cfg.image_size, count=1)]

    def patch_embeddings(self, images: Tensor) -> Tensor:
        """``(B, 3, S, S)`` -> patch embeddings ``(B, D, G, G)``."""
        patches, g = patch_grid(images, self.config.grid)
        z = self.backbone(patches)  # (B*G*G, D)
        return z.view(images.shape[0], g, g, -1).permute(0, 3, 1, 2)  # (B, D, G, G)

    def training_step(self, batch: Batch) -> tuple[Tensor, dict[str, float]]:
        z = self.patch_embeddings(batch.views[0])
        c = self.context(z)
        loss, accuracy = self.criterion(
            [w(c) for w in self.predictors], z, self.ranks.gather_with_grad
        )
        return loss, {"cpc_accuracy": accuracy}  # a tensor: the trainer reads it after its sync

    def embed(self, images: Tensor) -> Tensor:
        return self.patch_embeddings(images).mean(dim=(2, 3))  # (B, D): mean over the grid
