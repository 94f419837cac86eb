"""A small pyramidal TIFF, as a slide scanner writes one: tiled levels, each half the last."""

from __future__ import annotations

from pathlib import Path

import numpy as np

TISSUE = (slice(512, 1280), slice(640, 1664))  # rows, columns of level 0 holding "tissue"


def write_slide(path: Path, width: int = 2304, height: int = 1792, mpp: float = 0.5) -> Path:
    """Background grey-white glass with a stained block of tissue (pink, textured) in the
    middle, a pen mark (near black) in a corner; 4 levels, 256 px tiles, zlib."""
    import tifffile

    rng = np.random.default_rng(0)
    img = np.full((height, width, 3), 236, np.uint8)
    img += rng.integers(0, 6, img.shape, dtype=np.uint8)  # glass is not perfectly flat
    rows, cols = TISSUE
    block = img[rows, cols]
    block[:] = (190, 90, 170)
    block += rng.integers(0, 50, block.shape, dtype=np.uint8)
    img[64:256, 64:256] = (20, 20, 30)  # pen
    path.parent.mkdir(parents=True, exist_ok=True)
    with tifffile.TiffWriter(path) as tw:
        for level in range(4):
            step = 2**level
            res = 1e4 / (mpp * step)  # pixels per centimetre
            tw.write(
                np.ascontiguousarray(img[::step, ::step]),
                tile=(256, 256),
                photometric="rgb",
                compression="zlib",
                subfiletype=0 if level == 0 else 1,
                resolution=(res, res),
                resolutionunit="CENTIMETER",
            )
    return path
