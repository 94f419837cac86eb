"""What the Data page says about a path or a scan that cannot be trained on, in one line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sslstudio.gui.pages.data.banner import CAUTION, ERROR

MIN_IMAGES = 4  # below this Start stays off: a batch of views needs several distinct images


def unusable_folder(path: Path) -> str:
    """Why ``path`` cannot be opened as a folder of images; "" when it can."""
    if path.is_file():
        return (
            f"{path.name} is a file, not a folder: choose the folder that holds your images "
            f"({path.parent})."
        )
    if not path.exists():
        return f"The folder {path} does not exist (moved, renamed, or on a disk not attached)."
    if not path.is_dir():
        return f"{path} is not a folder: choose a folder of images."
    return ""


def index_problem(index: Any) -> tuple[str, str] | None:
    """(message, banner level) for a scan with no or too few images; None when it is fine."""
    n = len(index.images)
    if n == 0:
        unread = len(index.skipped)
        found = f": {unread:,} files could not be read (see Files set aside)" if unread else ""
        return (
            f"No images found in {index.root}{found}. Choose a folder that holds JPEG, PNG or "
            "TIFF images, or subfolders of them.",
            ERROR,
        )
    if n < MIN_IMAGES:
        return (
            f"Only {n} image{'' if n == 1 else 's'}: too few to train on (at least {MIN_IMAGES} "
            "are needed, and a few hundred to learn anything useful). Choose a bigger folder.",
            CAUTION,
        )
    return None


def ignored_text(index: Any) -> str:
    """'1 non-image file, 2 system files' or 'none': neither images nor failures."""
    other = getattr(index, "other", 0)  # documents such as README.md
    ignored = [
        f"{n:,} {what}{'' if n == 1 else 's'}"
        for n, what in ((other, "non-image file"), (index.ignored, "system file"))
        if n
    ]
    return ", ".join(ignored) or "none"
