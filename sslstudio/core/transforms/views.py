"""Multi-view pipelines: uint8 batch in, normalised views out, parameters drawn per image.

This is the one augmentation path: the trainer, the GUI's live preview and the benchmarks all
call :class:`ViewPipeline`. It runs on the device the batch lives on, so on a GPU the uint8
batch is moved once and every view is made there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from sslstudio.config import AugmentConfig
from sslstudio.core.transforms import ops

# ImageNet statistics: kept for every preset so exported models have one documented input spec
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ViewSpec:
    """One kind of view a method asks for: its augmentation, output size, and how many."""

    augment: AugmentConfig
    size: int
    count: int = 1


class ViewPipeline:
    """Makes every view a method needs from one uint8 batch.

    Args:
        specs: the views, in the order the method expects them (e.g. 2 global + N local).
        constraints: augmentation fields a method forbids, forced to these values (e.g. RotNet
            sets ``{"rot90_p": 0.0}``); applied to every spec.
    """

    def __init__(self, specs: list[ViewSpec], constraints: dict[str, float] | None = None) -> None:
        if not specs:
            raise ValueError("a view pipeline needs at least one ViewSpec")
        self.specs = [replace(s, augment=replace(s.augment, **(constraints or {}))) for s in specs]

    @property
    def num_views(self) -> int:
        return sum(s.count for s in self.specs)

    def __call__(
        self, images: Tensor, generator: torch.Generator, normalize: bool = True
    ) -> list[Tensor]:
        """Args: images ``(B, 3, H, W)`` uint8 on any device. Returns one ``(B, 3, S, S)`` float
        tensor per view."""
        x = images.float().div_(255)  # converted once, shared by every view
        views = []
        for spec in self.specs:
            for _ in range(spec.count):
                v = augment_batch(x, spec.augment, spec.size, generator)
                views.append(normalise(v) if normalize else v)
        return views


def normalise(x: Tensor) -> Tensor:
    mean = ops.constant(tuple(MEAN), x.device, x.dtype).view(1, 3, 1, 1)
    std = ops.constant(tuple(STD), x.device, x.dtype).view(1, 3, 1, 1)
    return (x - mean) / std


def augment_batch(x: Tensor, a: AugmentConfig, size: int, generator: torch.Generator) -> Tensor:
    """One random view of each image in ``x`` (``(B, 3, H, W)`` float in [0, 1]).

    Random numbers come from ``generator`` on the CPU (cheap, ``(B,)``-sized draws), so a view
    depends only on the generator's seed, whichever device does the pixel work: that is what
    makes resume exact and the preview equal to training.
    """
    b = x.shape[0]
    g = generator

    def coin(p: float) -> Tensor:
        return torch.rand(b, generator=g) < p

    def uniform(lo: float, hi: float) -> Tensor:
        return torch.empty(b).uniform_(lo, hi, generator=g)

    # every parameter is drawn first, in a fixed order, on the CPU; then moved in one copy
    p: dict[str, Tensor] = {"boxes": crop_boxes_for(a, b, g)}
    p["hflip"], p["vflip"] = coin(a.hflip_p), coin(a.vflip_p)
    p["rot"] = torch.randint(0, 4, (b,), generator=g) * coin(a.rot90_p)
    jit = coin(a.jitter_p).float()
    one = torch.ones(b)
    # factors drawn as torchvision's ColorJitter: U(max(0, 1 - s), 1 + s); hue U(-h, h)
    p["bright"] = one + jit * (uniform(max(0.0, 1 - a.brightness), 1 + a.brightness) - one)
    p["contr"] = one + jit * (uniform(max(0.0, 1 - a.contrast), 1 + a.contrast) - one)
    p["satur"] = one + jit * (uniform(max(0.0, 1 - a.saturation), 1 + a.saturation) - one)
    p["hue"] = jit * uniform(-a.hue, a.hue)
    if a.hed_p > 0:
        use = coin(a.hed_p).float()[:, None]
        p["alpha"] = 1 + use * torch.empty(b, 3).uniform_(-a.hed_sigma, a.hed_sigma, generator=g)
        p["beta"] = use * torch.empty(b, 3).uniform_(-a.hed_sigma, a.hed_sigma, generator=g)
    if a.grey_p > 0:
        p["grey"] = coin(a.grey_p)
    max_sigma = 0.0
    if a.blur_p > 0 and a.blur_sigma_max > 0:
        # sigma is specified at 224 px (SimCLR's convention) and scaled to the output size
        sigma = (
            uniform(a.blur_sigma_min, a.blur_sigma_max) * (size / 224.0) * coin(a.blur_p).float()
        )
        p["sigma"], max_sigma = sigma, float(sigma.max())
    p = ops.to_device(p, x.device)

    out = ops.affine_views(x, p["boxes"], p["hflip"], p["vflip"], p["rot"], size)
    if a.jitter_p > 0:
        out = _colour_jitter(out, a, p)
    if "alpha" in p:
        out = ops.hed_jitter(out, p["alpha"], p["beta"])
    if "grey" in p:
        out = ops.to_greyscale(out, p["grey"])
    if max_sigma > 0:
        out = ops.gaussian_blur(out, p["sigma"], max_sigma)
    return out


def _colour_jitter(out: Tensor, a: AugmentConfig, p: dict[str, Tensor]) -> Tensor:
    """ColorJitter's four adjustments with the factors drawn for each image (``p``)."""
    if a.brightness > 0:
        out = ops.adjust_brightness(out, p["bright"])
    if a.contrast > 0:
        out = ops.adjust_contrast(out, p["contr"])
    if a.saturation > 0:
        out = ops.adjust_saturation(out, p["satur"])
    if a.hue > 0:
        out = ops.adjust_hue(out, p["hue"])
    return out


def crop_boxes_for(a: AugmentConfig, n: int, g: torch.Generator) -> Tensor:
    return ops.crop_boxes(
        n, (a.crop_scale_min, a.crop_scale_max), (a.crop_ratio_min, a.crop_ratio_max), g
    )


def centre_view(images: Tensor, size: int) -> Tensor:
    """The deterministic evaluation view: the whole (square) image resized to ``size``,
    normalised."""
    x = images.float().div_(255)
    if x.shape[-1] != size or x.shape[-2] != size:
        x = torch.nn.functional.interpolate(
            x, size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )
    return normalise(x.clamp_(0, 1))


def step_generator(seed: int, step: int, stream: int = 0) -> torch.Generator:
    """A generator whose state depends only on (seed, step, stream): exact resume needs no saved
    state."""
    g = torch.Generator()
    g.manual_seed((seed * 1_000_003 + step * 7919 + stream * 104_729) % (2**63 - 1))
    return g


def default_cache_size(image_size: int, native: int | None = None) -> int:
    """Side of the decoded cache: room for crops at 1.5x the training size, never above the
    source."""
    want = int(math.ceil(image_size * 1.5))
    if native is not None:
        want = min(want, native)
    return max(want, image_size)
