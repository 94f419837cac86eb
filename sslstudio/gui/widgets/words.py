"""One vocabulary for the window: the names of settings, counts, shares and checkpoints.

The Method and Augment pages label their fields; the Runs page lists a run's settings and the
Export page its checkpoints. They say the same thing the same way: the labels here are the
forms' labels (tests/gui/test_words.py holds them equal), numbers carry thousands separators,
shares are percentages, and "1 image" is singular.
"""

from __future__ import annotations

import re

from sslstudio.gui.widgets.config_form import field_label

# as the Method page's forms say them (its RUN_LABELS and optimiser card)
RUN_LABELS = {
    "max_steps": "Max steps (0 = all)",
    "monitor_every": "Health check every",
    "checkpoint_every": "Checkpoint every",
    "small_stem": "Small-image stem",
    "threads": "CPU threads",
    "progressive_from": "Start size (0 = fixed)",
}
OPTIM_LABELS = {
    "lr": "Learning rate",
    "warmup_epochs": "Warm-up epochs",
    "min_lr_ratio": "Final LR (share)",
}
# as the Augment page's form says them (its LABELS)
AUGMENT_LABELS = {
    "crop_scale_min": "Crop area (min)",
    "crop_scale_max": "Crop area (max)",
    "crop_ratio_min": "Aspect ratio (min)",
    "crop_ratio_max": "Aspect ratio (max)",
    "hflip_p": "Horizontal flip",
    "vflip_p": "Vertical flip",
    "rot90_p": "90° rotations",
    "jitter_p": "Colour jitter",
    "grey_p": "Greyscale",
    "blur_p": "Blur",
    "blur_sigma_min": "Blur sigma (min)",
    "blur_sigma_max": "Blur sigma (max)",
    "hed_p": "Stain jitter",
    "hed_sigma": "Stain jitter strength",
}
GROUP_LABELS = {"optim": OPTIM_LABELS, "augment": AUGMENT_LABELS, "": RUN_LABELS}

BEST_MEANS = "the step that scored highest on images with colours and staining altered"


def setting_label(key: str) -> str:
    """A config key (``image_size``, ``optim.lr``, ``augment.hflip_p``) by the label its page's
    form shows; fields no form names by :func:`field_label`."""
    group, _, name = key.rpartition(".")
    return GROUP_LABELS.get(group, {}).get(name) or field_label(name)


def count(n: int, noun: str, plural: str = "") -> str:
    """'1 image', '3,619 images'."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"


def share(x: float) -> str:
    """A share as a percentage: 0.153 -> '15.3%', 1.0 -> '100%'."""
    return f"{x:.1%}".replace(".0%", "%")


def checkpoint_label(name: str, step: int) -> str:
    """A checkpoint folder as the Train and Export pages name it."""
    if name == "best":
        return f"Best checkpoint (step {step:,}): {BEST_MEANS}"
    if name == "final":
        return f"Final checkpoint (step {step:,})"
    if re.fullmatch(r"step_\d+", name):
        return f"Step {step:,}"
    return f"{name} (step {step:,})"
