"""One usable image as a record: what the columns of a
:class:`~sslstudio.core.data.table.RecordTable` hand out."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ImageRecord:
    """One usable image. ``path`` is POSIX, relative to the index root."""

    path: str
    width: int
    height: int
    format: str
    label: str | None  # first-level subfolder, None for files directly in the root
    size_bytes: int
    mtime_ns: int
