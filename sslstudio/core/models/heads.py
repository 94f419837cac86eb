"""Heads as block lists: ``(in, out, norm, activation)`` per linear layer (lightly's shape)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

Block = tuple[int, int, "nn.Module | None", "nn.Module | None"]


class ProjectionHead(nn.Module):
    """A stack of ``Linear -> [norm] -> [activation]`` blocks.

    Args:
        blocks: ``(in_features, out_features, norm or None, activation or None)`` per layer; a
            linear layer followed by a norm carries no bias (the norm's shift replaces it).
    """

    def __init__(self, blocks: list[Block]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for cin, cout, norm, act in blocks:
            layers.append(nn.Linear(cin, cout, bias=norm is None))
            if norm is not None:
                layers.append(norm)
            if act is not None:
                layers.append(act)
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(x)


def simclr_head(in_dim: int, hidden: int, out: int, layers: int = 2) -> ProjectionHead:
    """SimCLR's MLP: ``layers - 1`` hidden blocks with BatchNorm + ReLU, then a linear output."""
    if layers < 1:
        raise ValueError(f"a projection head needs at least 1 layer, got {layers}")
    blocks: list[Block] = []
    d = in_dim
    for _ in range(layers - 1):
        blocks.append((d, hidden, nn.BatchNorm1d(hidden), nn.ReLU(inplace=True)))
        d = hidden
    blocks.append((d, out, None, None))
    return ProjectionHead(blocks)


class DINOHead(nn.Module):
    """DINO's head [0]: a 3-layer MLP (GELU) to a bottleneck, L2 normalisation, then a
    weight-normalised linear layer whose norm is fixed to 1 ("norm_last_layer"), so each output
    is a cosine similarity to one of ``out_dim`` learned directions.

    - [0] DINO, Caron et al. 2021, https://arxiv.org/abs/2104.14294 (sec. 3.1 and appendix)

    Args:
        in_dim: backbone feature width. out_dim: K. hidden, bottleneck: MLP widths.
        batchnorm: BatchNorm after the hidden layers (DINO's ``use_bn_in_head`` option).
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden: int = 512,
        bottleneck: int = 128,
        batchnorm: bool = False,
    ) -> None:
        super().__init__()
        if min(in_dim, out_dim, hidden, bottleneck) < 1:
            raise ValueError(
                f"widths must be >= 1, got {in_dim}, {out_dim}, {hidden}, {bottleneck}"
            )
        self.mlp = ProjectionHead(
            [
                (in_dim, hidden, nn.BatchNorm1d(hidden) if batchnorm else None, nn.GELU()),
                (hidden, hidden, nn.BatchNorm1d(hidden) if batchnorm else None, nn.GELU()),
                (hidden, bottleneck, None, None),
            ]
        )
        self.last_weight = nn.Parameter(torch.empty(out_dim, bottleneck))
        nn.init.trunc_normal_(self.last_weight, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_dim)`` -> ``(B, out_dim)`` values in [-1, 1]."""
        x = F.normalize(self.mlp(x), dim=-1)  # (B, bottleneck) on the unit sphere
        return F.linear(x, F.normalize(self.last_weight, dim=-1))  # weight norm with g = 1


def two_layer_mlp(in_dim: int, hidden: int, out: int) -> ProjectionHead:
    """Linear -> BatchNorm -> ReLU -> Linear: BYOL's projector and predictor (Grill et al. 2020,
    sec. 3.3), and the predictor of SimSiam and NNCLR."""
    return ProjectionHead(
        [(in_dim, hidden, nn.BatchNorm1d(hidden), nn.ReLU(inplace=True)), (hidden, out, None, None)]
    )
