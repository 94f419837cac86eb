"""Domain presets: starting points for :class:`AugmentConfig`, every value still editable.

- natural: SimCLR's ImageNet recipe (Chen et al. 2020, appendix A): crop 0.08-1, flip,
  colour jitter 0.8 with p=0.8, greyscale p=0.2, blur p=0.5. For inputs <= 64 px the CIFAR
  variant from the same paper (B.9): jitter strength 0.5, no blur.
- histopathology: tissue has no up or down, so all 90-degree rotations and both flips; milder
  crops (tiles are already crops of a slide); stain (HED) jitter instead of strong hue shifts;
  no greyscale (colour carries the stain information). Tellez et al. 2019, "Quantifying the
  effects of data augmentation and stain color normalization ..." (arXiv:1902.06543).
- microscopy: fluorescence / brightfield without stain colour: rotations and flips, brightness
  and contrast only.
"""

from __future__ import annotations

from dataclasses import replace

from sslstudio.config import AugmentConfig

PRESETS = ("natural", "histopathology", "microscopy")

DESCRIPTIONS = {
    "natural": "Photos of everyday scenes: SimCLR's crops, flips, strong colour jitter, greyscale "
    "and blur.",
    "histopathology": "H&E tiles: rotations and flips in every direction, milder crops, stain "
    "(HED) jitter, no greyscale.",
    "microscopy": "Unstained or fluorescence images: rotations, flips, brightness and contrast "
    "only.",
}


def with_jitter_strength(a: AugmentConfig, factor: float) -> AugmentConfig:
    """``a`` with its colour jitter (brightness, contrast, saturation, hue) scaled by ``factor``;
    stain jitter, crops and the jitter probability unchanged."""
    return replace(
        a,
        brightness=a.brightness * factor,
        contrast=a.contrast * factor,
        saturation=a.saturation * factor,
        hue=a.hue * factor,
    )


def preset(name: str, image_size: int) -> AugmentConfig:
    """The preset ``name`` tuned for ``image_size``; raises ``ValueError`` for an unknown name."""
    small = image_size <= 64
    if name == "natural":
        s = 0.5 if small else 1.0  # jitter strength
        return AugmentConfig(
            crop_scale_min=0.08,
            brightness=0.8 * s,
            contrast=0.8 * s,
            saturation=0.8 * s,
            hue=0.2 * s,
            jitter_p=0.8,
            grey_p=0.2,
            blur_p=0.0 if small else 0.5,
        )
    if name == "histopathology":
        return AugmentConfig(
            crop_scale_min=0.2 if small else 0.25,
            hflip_p=0.5,
            vflip_p=0.5,
            rot90_p=1.0,
            jitter_p=0.8,
            brightness=0.25,
            contrast=0.25,
            saturation=0.2,
            hue=0.04,
            grey_p=0.0,
            blur_p=0.0 if small else 0.3,
            hed_p=0.8,
            hed_sigma=0.05,
        )
    if name == "microscopy":
        return AugmentConfig(
            crop_scale_min=0.2,
            hflip_p=0.5,
            vflip_p=0.5,
            rot90_p=1.0,
            jitter_p=0.8,
            brightness=0.3,
            contrast=0.3,
            saturation=0.0,
            hue=0.0,
            grey_p=0.0,
            blur_p=0.0 if small else 0.3,
        )
    raise ValueError(f"unknown augmentation preset {name!r}; choose one of {', '.join(PRESETS)}")
