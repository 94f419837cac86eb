"""Heads as block lists: ``(in, out, norm, activation)`` per linear layer (lightly's shape)."""

from __future__ import annotations

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
