"""Batched augmentation ops with random parameters drawn per image.

torchvision v2 applied to a batch tensor draws *one* set of parameters for the whole batch
(every image gets the same crop); applied per image it costs Python overhead per view that a
2-core CPU cannot afford beside the model. These ops take a whole batch ``(B, 3, H, W)`` and a
``(B, ...)`` tensor of parameters, so one call augments every image differently, on whatever
device the batch lives on (the GPU fast path is the same code). Geometric ops (crop, flips,
90-degree rotations) are fused into one affine resampling per image.

Each op's maths matches torchvision's functional op for the same parameters; the tests
compare them one image at a time.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import Tensor

# ITU-R BT.601 luma, as torchvision's rgb_to_grayscale
_LUMA = (0.299, 0.587, 0.114)


@functools.lru_cache(maxsize=64)
def constant(values: tuple, device: torch.device, dtype: torch.dtype) -> Tensor:
    """A small constant tensor on ``device``, made once: building it from a Python list (or
    copying it from pageable memory) on every call would stall the GPU's queue each time."""
    return torch.tensor(values, dtype=torch.float64).to(device=device, dtype=dtype)


def to_device(params: dict[str, Tensor], device: torch.device) -> dict[str, Tensor]:
    """Move CPU-drawn parameters to ``device`` in one asynchronous copy.

    A copy from pageable memory waits for all queued GPU work first; a dozen of them per view
    kept the GPU idle while the CPU prepared the next step. One pinned, non-blocking copy of
    the parameters packed together does not.
    """
    if device.type == "cpu" or not params:
        return params
    flat = [t.reshape(len(t), -1).to(torch.float64) for t in params.values()]
    packed = torch.cat(flat, dim=1)
    if device.type == "cuda":
        packed = packed.pin_memory()
    packed = packed.to(device, non_blocking=True)
    out, col = {}, 0
    for (name, t), f in zip(params.items(), flat):
        w = f.shape[1]
        out[name] = packed[:, col : col + w].reshape(t.shape).to(t.dtype)
        col += w
    return out


def crop_boxes(
    n: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    generator: torch.Generator,
    tries: int = 10,
) -> Tensor:
    """Random-resized-crop boxes as fractions of the image, one per image.

    Same sampling as torchvision's ``RandomResizedCrop.get_params`` on a square image:
    area ~ U(scale), log-ratio ~ U(log ratio); up to ``tries`` draws, then the whole image
    (clamped to the ratio range) as the fallback.

    Returns:
        ``(n, 4)`` tensor of ``(cx, cy, w, h)`` in [0, 1] units of the image side.
    """
    area = torch.empty(n, tries).uniform_(scale[0], scale[1], generator=generator)
    log_r = torch.empty(n, tries).uniform_(
        math.log(ratio[0]), math.log(ratio[1]), generator=generator
    )
    r = torch.exp(log_r)
    w = torch.sqrt(area * r)  # (n, tries) in units of the side
    h = torch.sqrt(area / r)
    ok = (w <= 1) & (h <= 1)
    first = torch.where(ok.any(1), ok.float().argmax(1), torch.full((n,), -1))
    fallback_w = torch.full((n,), min(1.0, ratio[1]) if ratio[0] <= 1 else 1.0 / ratio[0])
    fallback_w = fallback_w.clamp(max=1.0)
    pick = first.clamp(min=0)
    w_sel = torch.where(first >= 0, w.gather(1, pick[:, None])[:, 0], torch.ones(n))
    h_sel = torch.where(first >= 0, h.gather(1, pick[:, None])[:, 0], torch.ones(n))
    u = torch.rand(n, 2, generator=generator)
    cx = w_sel / 2 + u[:, 0] * (1 - w_sel)
    cy = h_sel / 2 + u[:, 1] * (1 - h_sel)
    return torch.stack([cx, cy, w_sel, h_sel], dim=1)


def affine_views(
    images: Tensor, boxes: Tensor, hflip: Tensor, vflip: Tensor, rot90: Tensor, size: int
) -> Tensor:
    """Crop ``boxes``, flip and rotate by multiples of 90 degrees, resize to ``size``: one resample.

    Args:
        images: ``(B, C, H, W)`` float.
        boxes: ``(B, 4)`` ``(cx, cy, w, h)`` in [0, 1] units.
        hflip, vflip: ``(B,)`` bool.
        rot90: ``(B,)`` int in 0..3, counter-clockwise quarter turns.
        size: output side in pixels.

    Returns:
        ``(B, C, size, size)``.
    """
    b = images.shape[0]
    dev, dt = images.device, images.dtype
    boxes = boxes.to(device=dev, dtype=dt)
    cx, cy, w, h = boxes.unbind(1)
    k = rot90.to(dev)
    # rotation of output coordinates by k quarter turns (y axis points down in images)
    cos = constant((1.0, 0.0, -1.0, 0.0), dev, dt)[k]
    sin = constant((0.0, 1.0, 0.0, -1.0), dev, dt)[k]
    sx = torch.where(hflip.to(dev), -1.0, 1.0).to(dt)
    sy = torch.where(vflip.to(dev), -1.0, 1.0).to(dt)
    theta = torch.zeros(b, 2, 3, device=dev, dtype=dt)  # maps output grid -> input grid in [-1, 1]
    theta[:, 0, 0] = w * sx * cos
    theta[:, 0, 1] = -w * sy * sin
    theta[:, 1, 0] = h * sx * sin
    theta[:, 1, 1] = h * sy * cos
    theta[:, 0, 2] = 2 * cx - 1
    theta[:, 1, 2] = 2 * cy - 1
    grid = F.affine_grid(theta, [b, images.shape[1], size, size], align_corners=False)
    return F.grid_sample(
        images, grid, mode="bilinear", padding_mode="reflection", align_corners=False
    )


def _grey(x: Tensor) -> Tensor:
    r, g, b = x.unbind(1)  # (not a 1x1 convolution: 25x slower on a CPU)
    return (_LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b).unsqueeze(1)  # (B, 1, H, W)


def _blend(a: Tensor, b: Tensor, ratio: Tensor) -> Tensor:
    """``ratio * a + (1 - ratio) * b`` clamped to [0, 1], with ``ratio`` of shape (B,)."""
    r = ratio.view(-1, 1, 1, 1).to(a.dtype)
    return torch.lerp(b, a, r).clamp_(0, 1)  # b + r (a - b): one pass; b may broadcast


def adjust_brightness(x: Tensor, factor: Tensor) -> Tensor:
    return (x * factor.view(-1, 1, 1, 1).to(x.dtype)).clamp_(0, 1)


def adjust_contrast(x: Tensor, factor: Tensor) -> Tensor:
    mean = _grey(x).mean(dim=(1, 2, 3), keepdim=True)  # (B, 1, 1, 1)
    return _blend(x, mean, factor)


def adjust_saturation(x: Tensor, factor: Tensor) -> Tensor:
    return _blend(x, _grey(x), factor)


def adjust_hue(x: Tensor, shift: Tensor) -> Tensor:
    """Rotate hue by ``shift`` (fraction of a turn, in [-0.5, 0.5]) per image, through HSV.

    In sextants (h6 = 6 * hue) and with v * s = max - min, so that neither the saturation nor
    hue's wrap to [0, 1) is computed: where max == min the result is max whatever the hue.
    Channel n of the result is v - (max - min) * clamp(min(k, 4 - k), 0, 1), k = (h6 + n) mod 6,
    the sector table in closed form. 27 against 40 ms per view of 128 at 64 px (one thread).
    """
    maxc, _ = x.max(dim=1)
    minc, _ = x.min(dim=1)
    delta = maxc - minc
    inv = delta.clamp_min(1e-12).reciprocal_()  # where delta is 0 the numerators are 0 too
    r, g, b = x.unbind(1)
    h6 = torch.where(
        maxc == r, (g - b) * inv, torch.where(maxc == g, (b - r) * inv + 2.0, (r - g) * inv + 4.0)
    )
    h6.add_(shift.view(-1, 1, 1).to(x.dtype) * 6.0)
    out = torch.empty_like(x)
    for channel, n in enumerate((5.0, 3.0, 1.0)):
        k = torch.remainder(h6 + n, 6.0)
        k = torch.minimum(k, 4.0 - k).clamp_(0.0, 1.0)
        torch.sub(maxc, k.mul_(delta), out=out[:, channel])
    return out


def to_greyscale(x: Tensor, mask: Tensor) -> Tensor:
    """Replace masked images by their 3-channel luma."""
    m = mask.view(-1, 1, 1, 1).to(x.device)
    return torch.where(m, _grey(x).expand_as(x), x)


def gaussian_blur(x: Tensor, sigma: Tensor, max_sigma: float | None = None) -> Tensor:
    """Separable Gaussian blur with a per-image ``sigma`` in pixels; sigma 0 leaves it unchanged.

    ``max_sigma`` (the largest sigma, known where it was drawn) spares reading it back from
    the device, which would wait for the GPU to finish everything queued before.
    """
    b, c, hgt, wid = x.shape
    if max_sigma is None:
        max_sigma = float(sigma.max()) if sigma.numel() else 0.0
    smax = max_sigma
    if smax <= 0:
        return x
    radius = max(1, min(int(math.ceil(3 * smax)), (min(hgt, wid) - 1) // 2))
    pos = constant(tuple(range(-radius, radius + 1)), x.device, x.dtype)
    s = sigma.to(x.device, x.dtype).clamp(min=1e-3).view(-1, 1)
    kern = torch.exp(-0.5 * (pos / s) ** 2)  # (B, K)
    kern = kern / kern.sum(1, keepdim=True)
    kern = torch.where(
        sigma.to(x.device).view(-1, 1) > 0, kern, (pos == 0).to(x.dtype).expand_as(kern)
    )
    kern = kern.repeat_interleave(c, dim=0)  # (B*C, K): one kernel per image channel
    y = x.reshape(1, b * c, hgt, wid)
    y = F.pad(y, (radius, radius, radius, radius), mode="reflect")
    y = F.conv2d(y, kern.view(b * c, 1, 1, -1), groups=b * c)
    y = F.conv2d(y, kern.view(b * c, 1, -1, 1), groups=b * c)
    return y.view(b, c, hgt, wid)


# Ruifrok & Johnston (2001) stain vectors, rows = haematoxylin, eosin, DAB; as skimage's
# rgb_from_hed
_rgb_from_hed = torch.tensor(
    [[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]], dtype=torch.float64
)
_rgb_from_hed = _rgb_from_hed / _rgb_from_hed.norm(dim=1, keepdim=True)
# as nested tuples: hashable keys for constant()
_RGB_FROM_HED = tuple(map(tuple, _rgb_from_hed.tolist()))
_HED_FROM_RGB = tuple(map(tuple, torch.linalg.inv(_rgb_from_hed).tolist()))


def hed_jitter(x: Tensor, alpha: Tensor, beta: Tensor) -> Tensor:
    """Stain augmentation (Tellez et al. 2018): scale and shift each stain's optical density.

    Args:
        x: ``(B, 3, H, W)`` RGB in [0, 1].
        alpha: ``(B, 3)`` multiplicative factors per stain (1 = unchanged).
        beta: ``(B, 3)`` additive shifts per stain (0 = unchanged).
    """
    eps = 1.0 / 255
    m_in = constant(_HED_FROM_RGB, x.device, x.dtype)
    m_out = constant(_RGB_FROM_HED, x.device, x.dtype)
    # to stains, scale and shift, back to RGB optical density: linear, so one 3x3 map and one
    # offset per image, od' = od M_in diag(alpha) M_out + beta M_out (one batched matmul over
    # the pixels instead of two einsums and their copies: 6x faster on a CPU)
    mat = torch.einsum("cd,bd,de->bec", m_in, alpha.to(x.dtype), m_out)  # (B, 3 out, 3 in)
    off = (beta.to(x.dtype) @ m_out)[:, :, None]  # (B, 3, 1)
    b, c, h, w = x.shape
    od = x.clamp(min=eps).log_().neg_().reshape(b, c, h * w)  # (B, 3, HW) optical density
    od2 = torch.baddbmm(off, mat, od)
    return od2.neg_().exp_().clamp_(0, 1).view(b, c, h, w)
