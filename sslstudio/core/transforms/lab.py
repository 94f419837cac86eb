"""sRGB to CIE Lab (D65 white), in torch: the colour space colourisation predicts in.

L (lightness, 0..100) is what the network sees; a (green-red) and b (blue-yellow), each
roughly -110..110, are what it predicts. Formulas: IEC 61966-2-1 (sRGB transfer curve and
primaries) and CIE 15 (Lab).
"""

from __future__ import annotations

import torch
from torch import Tensor

# linear sRGB -> XYZ (D65), rows X, Y, Z
_RGB_TO_XYZ = (
    (0.4124564, 0.3575761, 0.1804375),
    (0.2126729, 0.7151522, 0.0721750),
    (0.0193339, 0.1191920, 0.9503041),
)
_WHITE_D65 = (0.95047, 1.0, 1.08883)
_DELTA = 6 / 29


def rgb_to_lab(rgb: Tensor) -> Tensor:
    """Args: rgb ``(B, 3, H, W)`` sRGB in [0, 1]. Returns Lab ``(B, 3, H, W)``: L in [0, 100], a,
    b."""
    x = rgb.float().clamp(0, 1)
    linear = torch.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)
    m = torch.tensor(_RGB_TO_XYZ, device=x.device)
    xyz = torch.einsum("ij,bjhw->bihw", m, linear)  # (B, 3, H, W): X, Y, Z
    xyz = xyz / torch.tensor(_WHITE_D65, device=x.device).view(1, 3, 1, 1)
    f = torch.where(
        xyz > _DELTA**3, xyz.clamp(min=1e-12) ** (1 / 3), xyz / (3 * _DELTA**2) + 4 / 29
    )
    fx, fy, fz = f.unbind(dim=1)  # each (B, H, W)
    return torch.stack([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)], dim=1)
