"""The network and batch both sides of the distributed equivalence test use."""

from __future__ import annotations

import torch
from torch import nn

from sslstudio.config import RunConfig
from sslstudio.core.methods import build_method
from sslstudio.core.models.groupnorm import batchnorm_to_groupnorm


def tiny_groupnorm_simclr() -> nn.Module:
    """SimCLR on tiny_cnn with GroupNorm (per-sample statistics: the same on any split of the
    batch) and no BatchNorm in the head, from a fixed seed."""
    torch.manual_seed(0)
    method = build_method(
        RunConfig(backbone="tiny_cnn", image_size=16, method_options={"temperature": 0.2})
    )
    batchnorm_to_groupnorm(method)
    for module in list(method.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.BatchNorm1d):
                setattr(module, child_name, nn.Identity())
    return method


def global_views(n: int = 8, size: int = 16) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return [torch.randn(n, 3, size, size, generator=g) for _ in range(2)]
