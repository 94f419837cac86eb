"""What a folder holds, from the pixels of a small sample: the augmentation preset to start from.

Rules, per image at 64 px, then over the sample (measured on 32 evenly spaced images of each
folder, 2026-12-07; per-image shares at the 10th / 50th / 90th percentile):

- stained: the share of pixels whose green is below both red and blue by over 0.04 (the pink of
  eosin, the purple of haematoxylin). kather2016-sample 0.11 / 0.94 / 0.99, crc-he-subset
  0.83 / 0.98 / 1.00, crc-he-shifted 0.91 / 0.98 / 1.00, cifar10-subset 0.00 / 0.00 / 0.03.
- dark: the share of pixels darker than 0.15 (fluorescence: a black background, bright cells).
  All four folders above 0.00 / 0.00–0.05 / 0.07–0.18.
- chroma: mean of max(R, G, B) − min(R, G, B); greyscale images are below 0.02 (the four
  folders' medians are 0.10–0.22).

Over the sample: mostly dark images → microscopy (fluorescence); else mostly grey →
greyscale (the microscopy preset: no colour to jitter); else mostly stained → histopathology;
else natural. "Mostly" is at least half the sampled images, which splits the four folders
with a wide margin (see tests/core/test_recognise.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sslstudio.core.data.index import ImageIndex
from sslstudio.imaging.decode import DecodeError, decode_resized

SAMPLE = 32  # images read
SIDE = 64  # pixels, shorter side: colour statistics need no detail
STAIN_GAP = 0.04  # green below red and blue by this much: a stained pixel
STAINED_SHARE = 0.5  # an image is stained when this share of its pixels is
DARK_LEVEL = 0.15
DARK_SHARE = 0.5  # an image is a fluorescence image when this share of its pixels is dark
GREY_CHROMA = 0.02
MOSTLY = 0.5  # of the sampled images


@dataclass(frozen=True)
class Recognition:
    kind: str  # histopathology | microscopy | greyscale | natural
    preset: str  # the augmentation preset for it
    reason: str  # one line a user reads


@dataclass(frozen=True)
class ImageStats:
    stained: float
    dark: float
    chroma: float


def image_stats(rgb: np.ndarray) -> ImageStats:
    """The statistics of one H x W x 3 uint8 image."""
    a = rgb.astype(np.float32) / 255.0
    r, g, b = a[..., 0], a[..., 1], a[..., 2]
    return ImageStats(
        stained=float(((np.minimum(r, b) - g) > STAIN_GAP).mean()),
        dark=float((a.mean(axis=-1) < DARK_LEVEL).mean()),
        chroma=float((a.max(axis=-1) - a.min(axis=-1)).mean()),
    )


def recognise(images: Sequence[np.ndarray]) -> Recognition:
    """The kind of images ``images`` (uint8 RGB arrays, a sample of a folder) are."""
    stats = [image_stats(im) for im in images]
    n = len(stats)
    if not n:
        return Recognition("natural", "natural", "No image could be read: the general preset.")
    dark = sum(s.dark >= DARK_SHARE for s in stats)
    grey = sum(s.chroma < GREY_CHROMA for s in stats)
    stained = sum(s.stained >= STAINED_SHARE for s in stats)
    of = f"of {n} sampled images"
    if dark >= MOSTLY * n:
        why = f"{dark} {of} are mostly black background with bright areas, as in fluorescence."
        return Recognition("microscopy", "microscopy", why)
    if grey >= MOSTLY * n:
        why = f"{grey} {of} have no colour (greyscale): brightness and contrast changes only."
        return Recognition("greyscale", "microscopy", why)
    if stained >= MOSTLY * n:
        why = f"{stained} {of} are mostly pink and purple, the colours of H&E-stained tissue."
        return Recognition("histopathology", "histopathology", why)
    why = f"Most {of} are ordinary colour photos: not stained tissue, not dark, not grey."
    return Recognition("natural", "natural", why)


def sample_indices(count: int, n: int = SAMPLE) -> list[int]:
    """``n`` evenly spaced positions in ``range(count)``: every class folder of a sorted list
    is visited, and the same folder always gives the same sample."""
    if count <= n:
        return list(range(count))
    return sorted({int(i) for i in np.linspace(0, count - 1, n)})


def recognise_paths(paths: Sequence[str], read: Callable[[str], np.ndarray]) -> Recognition:
    """:func:`recognise` on a sample of ``paths``, each read by ``read(path)``; a file that
    cannot be read is left out of the sample."""
    images = []
    for k in sample_indices(len(paths)):
        try:
            images.append(read(paths[k]))
        except (DecodeError, OSError):  # a damaged file says nothing about the others
            continue
    return recognise(images)


def recognise_index(index: ImageIndex) -> Recognition:
    """:func:`recognise` on a sample of a scanned folder's images, read at 64 px."""
    root = Path(index.root)
    images = index.images
    paths = [str(root / images[k].path) for k in sample_indices(len(images))]
    return recognise_paths(paths, lambda p: decode_resized(p, SIDE))
