"""Per-tile colour normalisation of H&E tiles, in numpy only (the trainer, embedding and the
exported tool all call this one function, so a model sees the same pixels everywhere).

Reinhard et al. 2001, "Color transfer between images", done per tile in CIE Lab (D65): each
tile's L, a and b are shifted and scaled to fixed target means and standard deviations. What is
left is the tile's structure (where it is dark or pink relative to itself), not the colour of
the slide or the day it was stained. Formulas: IEC 61966-2-1 (sRGB) and CIE 15 (Lab).
"""

from __future__ import annotations

import numpy as np

NORMALISATIONS = ("none", "reinhard")

# linear sRGB -> XYZ (D65), rows X, Y, Z
_RGB_TO_XYZ = np.array(
    [
        [0.4124564, 0.3575761, 0.1804375],
        [0.2126729, 0.7151522, 0.0721750],
        [0.0193339, 0.1191920, 0.9503041],
    ]
)
_XYZ_TO_RGB = np.linalg.inv(_RGB_TO_XYZ)
_WHITE = np.array([0.95047, 1.0, 1.08883])
_DELTA = 6 / 29

# Target L, a, b means and standard deviations: the median over the tiles of crc-he-subset/train
# at 32 px (55, 28, -11 and 11.9, 6.4, 4.2). Any fixed H&E-like target works; a fixed
# one is what makes a tile from another slide land where a tile of this one would.
REINHARD_MEAN = (55.0, 28.0, -11.0)
REINHARD_STD = (12.0, 6.5, 4.0)


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """``(..., 3)`` sRGB in [0, 1] -> ``(..., 3)`` Lab: L in [0, 100], a and b about -110..110."""
    x = np.clip(rgb, 0.0, 1.0)
    linear = np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)
    xyz = linear @ _RGB_TO_XYZ.T / _WHITE
    f = np.where(xyz > _DELTA**3, np.cbrt(xyz), xyz / (3 * _DELTA**2) + 4 / 29)
    fx, fy, fz = f[..., 0], f[..., 1], f[..., 2]
    return np.stack([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)], axis=-1)


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    """The inverse of :func:`rgb_to_lab`, clipped to the sRGB gamut [0, 1]."""
    fy = (lab[..., 0] + 16) / 116
    f = np.stack([fy + lab[..., 1] / 500, fy, fy - lab[..., 2] / 200], axis=-1)
    xyz = np.where(f > _DELTA, f**3, 3 * _DELTA**2 * (f - 4 / 29)) * _WHITE
    linear = np.clip(xyz @ _XYZ_TO_RGB.T, 0.0, 1.0)
    rgb = np.where(linear <= 0.0031308, linear * 12.92, 1.055 * linear ** (1 / 2.4) - 0.055)
    return np.clip(rgb, 0.0, 1.0)


def reinhard(
    tiles: np.ndarray,
    mean: tuple[float, float, float] = REINHARD_MEAN,
    std: tuple[float, float, float] = REINHARD_STD,
) -> np.ndarray:
    """Each tile's Lab channels moved to ``mean`` and ``std``.

    Args:
        tiles: ``(N, H, W, 3)`` or ``(H, W, 3)`` uint8 RGB.
    Returns:
        uint8 of the same shape. A flat tile (std 0 in a channel) keeps its flat value at the
        target mean rather than being divided by zero.
    """
    single = tiles.ndim == 3
    x = tiles[None] if single else tiles
    lab = rgb_to_lab(x.astype(np.float32) / 255.0)
    mu = lab.mean(axis=(1, 2), keepdims=True)
    sd = lab.std(axis=(1, 2), keepdims=True)
    scale = np.asarray(std, dtype=np.float32) / np.maximum(sd, 1e-3)
    lab = (lab - mu) * scale + np.asarray(mean, dtype=np.float32)
    out = np.rint(lab_to_rgb(lab) * 255.0).astype(np.uint8)
    return out[0] if single else out


def normalise_tiles(
    tiles: np.ndarray,
    kind: str,
    mean: tuple[float, float, float] = REINHARD_MEAN,
    std: tuple[float, float, float] = REINHARD_STD,
) -> np.ndarray:
    """``tiles`` (uint8 RGB, ``(N, H, W, 3)`` or ``(H, W, 3)``) under the input normalisation
    ``kind``; ``mean`` and ``std`` are Reinhard's Lab targets (a bundle states its own)."""
    if kind == "none":
        return tiles
    if kind == "reinhard":
        return reinhard(tiles, mean, std)
    raise ValueError(
        f"unknown input normalisation {kind!r}; choose one of {', '.join(NORMALISATIONS)}"
    )


def describe(kind: str) -> dict | None:
    """The normalisation as a bundle manifest states it (``None`` when there is none)."""
    if kind == "none":
        return None
    if kind not in NORMALISATIONS:
        raise ValueError(f"unknown input normalisation {kind!r}")
    return {
        "kind": kind,
        "space": "CIE Lab (D65), per tile: each channel shifted and scaled to mean and std",
        "mean": list(REINHARD_MEAN),
        "std": list(REINHARD_STD),
        "function": "sslstudio.imaging.stain.normalise_tiles(pixels, kind, mean, std), uint8 in "
        "and out, before the scale, mean and std above",
    }
