"""Generated labelled images: the class is a shape, colour and position are nuisance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle", "cross")


def draw_shape(shape: str, size: int, rng: np.random.Generator) -> Image.Image:
    """A shape in a random colour on a random background: the class is the shape, colour is
    noise."""
    bg = tuple(int(v) for v in rng.integers(0, 256, 3))
    fg = tuple(int(v) for v in rng.integers(0, 256, 3))
    while sum(abs(a - b) for a, b in zip(bg, fg)) < 150:
        fg = tuple(int(v) for v in rng.integers(0, 256, 3))
    img = Image.new("RGB", (size, size), bg)
    d = ImageDraw.Draw(img)
    r = size * rng.uniform(0.28, 0.4)
    cx, cy = size / 2 + rng.uniform(-0.1, 0.1) * size, size / 2 + rng.uniform(-0.1, 0.1) * size
    box = [cx - r, cy - r, cx + r, cy + r]
    if shape == "circle":
        d.ellipse(box, fill=fg)
    elif shape == "square":
        d.rectangle(box, fill=fg)
    elif shape == "triangle":
        d.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fg)
    else:
        w = r / 3
        d.rectangle([cx - w, cy - r, cx + w, cy + r], fill=fg)
        d.rectangle([cx - r, cy - w, cx + r, cy + w], fill=fg)
    return img


def make_shapes_folder(
    root: Path, per_class: int, size: int = 32, seed: int = 0, shapes=SHAPES
) -> Path:
    rng = np.random.default_rng(seed)
    for shape in shapes:
        (root / shape).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            draw_shape(shape, size, rng).save(root / shape / f"{shape}_{i:04d}.png")
    return root


def tiny_config(folder: Path, out: Path | None = None, **over):
    """A RunConfig that trains in well under a second a step on a CPU."""
    import dataclasses

    from sslstudio.config import RunConfig
    from sslstudio.core.transforms.presets import preset

    cfg = RunConfig(
        data_root=str(folder),
        backbone="tiny_cnn",
        image_size=16,
        batch_size=8,
        epochs=2,
        checkpoint_every=2,
        monitor_every=2,
        probe_size=16,
        out=str(out) if out else "",
        threads=1,
        augment=preset("natural", 16),
    )
    return dataclasses.replace(cfg, **over)
