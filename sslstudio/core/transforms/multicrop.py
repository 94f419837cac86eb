"""Multi-crop (SwAV, sec. 3.2): two global views plus several small local views of each image.

"we use two standard resolution crops and sample V additional low resolution crops that cover
only small parts of the image. Using low resolution images ensures only a small increase in the
compute cost." Local views see small regions at a small size; the network must match them to
the global views, which teaches local-to-global correspondence.

- [0] SwAV, Caron et al. 2020, https://arxiv.org/abs/2006.09882
- [1] DINO, Caron et al. 2021, https://arxiv.org/abs/2104.14294
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import torch
from torch import Tensor

from sslstudio.config import RunConfig
from sslstudio.core.transforms.views import ViewSpec


def local_view_size(image_size: int, ratio: float) -> int:
    """Side of a local view: ``ratio`` of the training size (DINO: 96 of 224, about 0.43), at least
    8 px."""
    return max(8, round(image_size * ratio))


def multicrop_specs(
    cfg: RunConfig,
    n_local: int,
    *,
    size_ratio: float,
    local_scale_max: float,
    global_scale_min: float | None = None,
) -> list[ViewSpec]:
    """Two global views of ``cfg.augment`` at ``cfg.image_size``, then ``n_local`` local views.

    Local views crop between 5 % and ``local_scale_max`` of the image (SwAV 0.05-0.14, DINO
    0.05-0.4) and are resized to ``size_ratio`` x the training size. ``global_scale_min`` raises
    the global views' smallest crop so they do not overlap with the local ones (DINO: 0.4).
    """
    a = cfg.augment
    if global_scale_min is not None:
        lo = min(max(a.crop_scale_min, global_scale_min), a.crop_scale_max)
        a = replace(a, crop_scale_min=lo)
    specs = [ViewSpec(a, cfg.image_size, count=2)]
    if n_local > 0:
        local_min = min(0.05, local_scale_max)
        local = replace(cfg.augment, crop_scale_min=local_min, crop_scale_max=local_scale_max)
        specs.append(ViewSpec(local, local_view_size(cfg.image_size, size_ratio), count=n_local))
    return specs


def by_resolution(fn: Callable[[Tensor], Tensor], views: list[Tensor]) -> list[Tensor]:
    """``fn`` applied to each view, one batched call per run of same-sized views (DINO's
    MultiCropWrapper): the global views share one pass, the local views another."""
    out: list[Tensor] = []
    start = 0
    while start < len(views):
        end = start
        while end < len(views) and views[end].shape[-2:] == views[start].shape[-2:]:
            end += 1
        out += list(
            fn(torch.cat(views[start:end])).chunk(end - start)
        )  # (n*B, ...) -> n x (B, ...)
        start = end
    return out
