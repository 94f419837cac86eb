"""The Augment page's summary: an augmentation in plain words."""

from __future__ import annotations

from sslstudio.config import AugmentConfig


def describe(a: AugmentConfig, size: int) -> list[str]:
    """The augmentation in plain words, one line per kind of change."""

    def pct(p: float) -> str:
        return "every view" if p >= 1 else f"{p:.0%} of views"

    lines = [
        f"Crops covering {a.crop_scale_min:.0%} to {a.crop_scale_max:.0%} of the image (aspect "
        f"{a.crop_ratio_min:.2g} to {a.crop_ratio_max:.2g}), resized to {size} px."
    ]
    moves = [
        f"{name} in {pct(p)}"
        for name, p in (
            ("horizontal flips", a.hflip_p),
            ("vertical flips", a.vflip_p),
            ("90° rotations", a.rot90_p),
        )
        if p > 0
    ]
    lines.append(
        ("Geometry: " + ", ".join(moves) + ".")
        if moves
        else "No flips or rotations: orientation is kept."
    )
    strengths = [
        f"{name} ±{v:.0%}"
        for name, v in (
            ("brightness", a.brightness),
            ("contrast", a.contrast),
            ("saturation", a.saturation),
        )
        if v > 0
    ]
    if a.hue > 0:
        strengths.append(f"hue ±{a.hue * 360:.0f}°")
    if a.jitter_p > 0 and strengths:
        lines.append(f"Colour jitter in {pct(a.jitter_p)}: " + ", ".join(strengths) + ".")
    else:
        lines.append("No colour jitter.")
    if a.grey_p > 0:
        lines.append(f"Greyscale in {pct(a.grey_p)}.")
    if a.blur_p > 0 and a.blur_sigma_max > 0:
        lines.append(
            f"Gaussian blur in {pct(a.blur_p)} (sigma {a.blur_sigma_min:g} to {a.blur_sigma_max:g} "
            "px at 224 px)."
        )
    if a.hed_p > 0 and a.hed_sigma > 0:
        lines.append(f"Stain (HED) jitter in {pct(a.hed_p)}, strength ±{a.hed_sigma:g}.")
    return lines
