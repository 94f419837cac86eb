"""Scans kept on disk: a folder scanned once re-opens without being listed again.

A million-image folder takes tens of seconds to list; re-opening it reads its stored index
(columns memory-mapped, see :mod:`sslstudio.core.data.table`) after checking that nothing
changed: every folder's modification time is compared with the one recorded before it was
listed, which catches files added, removed or renamed anywhere. A folder of at most
:data:`~sslstudio.core.data.scan.HEADER_LIMIT` images is checked file by file too (size and
time, ~0.2 s for 50k files), which catches an image edited in place; in a bigger folder an edited
image is caught when it is decoded again. After a change the folder is scanned again, but the
files of unchanged subfolders keep the last scan's verdicts (:mod:`.rescan`); a damaged store
means a whole new scan. Stores live under the cache folder, one per folder and scan settings,
and are safe to delete.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path

from sslstudio.core.data.index import ImageIndex, SkippedFile
from sslstudio.core.data.scan import HEADER_LIMIT, scan_folder
from sslstudio.core.data.table import RecordTable
from sslstudio.imaging import decode as imaging
from sslstudio.imaging import slides

STORE_VERSION = 2  # 2: per-folder counts, so an unchanged folder is not listed again


def store_path(
    root: str | os.PathLike[str],
    cache_root: Path,
    channels: imaging.Channels | None,
    tiling: slides.SlideOptions | None = slides.DEFAULT_TILING,
) -> Path:
    key = f"{STORE_VERSION}|{os.path.abspath(Path(root).expanduser())}|{channels}|{tiling}"
    return (
        cache_root
        / "indexes"
        / hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:24]
    )


def open_index(
    root: str | os.PathLike[str],
    cache_root: Path | None,
    *,
    verify: bool = False,
    rescan: bool = False,
    progress: Callable[[int, int | None], None] | None = None,
    cancel: threading.Event | None = None,
    channels: imaging.Channels | None = None,
    header_limit: int = HEADER_LIMIT,
    tiling: slides.SlideOptions | None = slides.DEFAULT_TILING,
) -> ImageIndex:
    """The folder's stored index when it is still true, else a new scan (which is stored).

    Args:
        cache_root: where stores live; None scans without storing.
        verify: a stored scan that only read headers does not satisfy a request to verify.
        rescan: ignore any stored index.
    Other arguments as :func:`~sslstudio.core.data.scan.scan_folder`.
    """
    if cache_root is None or not str(root).strip():  # "" would open the current folder's store
        return scan_folder(
            root,
            verify=verify,
            progress=progress,
            cancel=cancel,
            channels=channels,
            header_limit=header_limit,
            tiling=tiling,
        )
    where = store_path(root, cache_root, channels, tiling)
    previous = None if rescan else _read(where, verify)
    if previous is not None and _unchanged(previous):
        if progress is not None:
            progress(len(previous.images), len(previous.images))
        return previous
    index = scan_folder(
        root,
        verify=verify,
        progress=progress,
        cancel=cancel,
        channels=channels,
        header_limit=header_limit,
        tiling=tiling,
        previous=previous,  # changed: reuse the rest
    )
    # a full or read-only disk costs the next open a scan, never this one its result
    with contextlib.suppress(OSError):
        save_index(index, where, verify=verify)
    return index


def save_index(index: ImageIndex, where: Path, *, verify: bool) -> None:
    where.parent.mkdir(parents=True, exist_ok=True)
    index.table.save(where / "images")
    meta = {
        "version": STORE_VERSION,
        "root": index.root,
        "verify": verify,
        "ignored": index.ignored,
        "other": index.other,
        "folders": index.folders,
        "folder_counts": index.folder_counts,
        "skipped": [[s.path, s.reason, s.error] for s in index.skipped],
    }
    tmp = where / "index.json.tmp"
    tmp.write_text(json.dumps(meta), encoding="utf-8")
    os.replace(tmp, where / "index.json")


def load_index(where: Path, *, verify: bool = False) -> ImageIndex | None:
    """The stored index, or None when absent, damaged, less verified than asked, or stale."""
    index = _read(where, verify)
    return index if index is not None and _unchanged(index) else None


def _read(where: Path, verify: bool) -> ImageIndex | None:
    try:
        meta = json.loads((where / "index.json").read_text(encoding="utf-8"))
        if meta.get("version") != STORE_VERSION or (verify and not meta.get("verify")):
            return None
        folders = {str(k): int(v) for k, v in meta["folders"].items()}
        counts = {str(k): (int(i), int(o)) for k, (i, o) in meta["folder_counts"].items()}
        table = RecordTable.load(where / "images")
        index = ImageIndex(
            root=str(meta["root"]),
            images=table,
            skipped=[SkippedFile(p, r, e) for p, r, e in meta["skipped"]],
            ignored=int(meta["ignored"]),
            other=int(meta["other"]),
            folders=folders,
            folder_counts=counts,
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return index


def _unchanged(index: ImageIndex) -> bool:
    root, table = index.root, index.table
    try:
        for rel, mtime in index.folders.items():
            if os.stat(os.path.join(root, rel) if rel else root).st_mtime_ns != mtime:
                return False
        if len(table) <= HEADER_LIMIT:
            size, mtime = table.columns["size_bytes"], table.columns["mtime_ns"]
            for k in range(len(table)):
                path = table.path(k)
                tile = slides.parse_address(path)
                st = os.stat(os.path.join(root, tile.slide if tile is not None else path))
                if st.st_size != size[k] or st.st_mtime_ns != mtime[k]:
                    return False
    except OSError:
        return False
    return True
