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


def slide_pixels(width: int = 2304, height: int = 1792) -> np.ndarray:
    """Glass with the stained tissue block of :data:`TISSUE`, as ``write_slide`` draws it."""
    rng = np.random.default_rng(0)
    img = np.full((height, width, 3), 236, np.uint8)
    img += rng.integers(0, 6, img.shape, dtype=np.uint8)
    block = img[TISSUE]
    block[:] = (190, 90, 170)
    block += rng.integers(0, 50, block.shape, dtype=np.uint8)
    return img


def write_vms(folder: Path, name: str = "case2") -> Path:
    """A Hamamatsu VMS slide as the scanner leaves it: ``name.vms`` (an INI file) naming a JPEG
    of the slide and a small map JPEG beside it. OpenSlide reads a VMS JPEG by its restart
    markers, so they are written every 16 MCUs of a 4:4:4 JPEG (Pillow's restart options)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(slide_pixels(2048, 1536))
    jpeg = {"quality": 90, "subsampling": 0, "restart_marker_blocks": 16}
    img.save(folder / f"{name}.jpg", **jpeg)
    img.resize((256, 192)).save(folder / f"{name}_map.jpg", quality=90, restart_marker_rows=1)
    (folder / f"{name}.vms").write_text(
        "[Virtual Microscope Specimen]\n"
        "NoLayers=1\nNoJpegColumns=1\nNoJpegRows=1\n"
        f"ImageFile={name}.jpg\nMapFile={name}_map.jpg\n"
        "PhysicalWidth=1024000\nPhysicalHeight=768000\n"
    )
    return folder / f"{name}.vms"
