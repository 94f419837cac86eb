"""What a file is, from its name and first bytes: no decoding, no dependencies.

Shared by the scan (which type-checks a million files by their magic bytes) and
:mod:`sslstudio.imaging.decode`, which re-exports both functions.
"""

from __future__ import annotations

import os

_BMP_DIB_SIZES = {12, 16, 40, 52, 56, 64, 108, 124}
_JUNK_NAMES = frozenset({"thumbs.db", "ehthumbs.db", "desktop.ini", "__macosx", "icon\r"})


def sniff_format(head: bytes) -> str | None:
    """Name the image format from a file's first bytes (32 are plenty), or None."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    # 'BM' alone would claim any text starting with it; the DIB header size confirms a bitmap.
    if head[:2] == b"BM" and int.from_bytes(head[14:18], "little") in _BMP_DIB_SIZES:
        return "bmp"
    return None


def is_ignored_name(name: str) -> bool:
    """OS and tool junk (.DS_Store, ._x.jpg, Thumbs.db, hidden files): skipped silently."""
    return name.startswith(".") or name.lower() in _JUNK_NAMES


# Files with these extensions that are not images are notes beside the images, not failures.
# A file with an image extension (or none) that is not an image is still skipped and reported.
_DOCUMENT_EXTENSIONS = frozenset(
    {
        ".md",
        ".txt",
        ".rst",
        ".csv",
        ".tsv",
        ".json",
        ".yaml",
        ".yml",
        ".xml",
        ".html",
        ".pdf",
        ".doc",
        ".docx",
        ".xls",
        ".xlsx",
        ".zip",
        ".py",
        ".log",
    }
)


def is_document(path: str) -> bool:
    """README.md, labels.csv, notes.pdf…: neither images nor failures when they do not decode."""
    return os.path.splitext(path)[1].lower() in _DOCUMENT_EXTENSIONS
