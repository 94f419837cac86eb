"""Swap a network's BatchNorm for GroupNorm: per-sample statistics, for methods where batch
statistics would leak information between the samples of a batch (CPC's patches)."""

from __future__ import annotations

import math

import torch
from torch import nn


def batchnorm_to_groupnorm(module: nn.Module, max_groups: int = 32) -> nn.Module:
    """Replace every ``BatchNorm2d`` in ``module`` (in place) with a ``GroupNorm`` over
    ``gcd(max_groups, C)`` groups; learned scale and shift are kept, running statistics dropped.
    Returns ``module``."""
    for name, child in list(module.named_children()):
        if isinstance(child, nn.BatchNorm2d):
            c = child.num_features
            gn = nn.GroupNorm(math.gcd(max_groups, c), c, eps=child.eps, affine=child.affine)
            if child.affine:
                with torch.no_grad():
                    gn.weight.copy_(child.weight)
                    gn.bias.copy_(child.bias)
            setattr(module, name, gn)
        else:
            batchnorm_to_groupnorm(child, max_groups)
    return module
