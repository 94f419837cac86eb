"""Decoded cache: every image decoded once, at working resolution, into one uint8 array.

Large images are decoded (and EXIF-rotated, colour-converted, ...) once, not every epoch.
The array ``(N, S, S, 3)`` lives in a ``.npy`` file under the cache folder, memory-mapped, keyed
by the folder's fingerprint (paths, sizes, mtimes) and the side ``S``; a changed folder gets a
new cache. Before the file grows the free disk space is checked; when it is short the cache is
kept in memory if that is small enough, otherwise a clear error says how much space is needed.

The cache folder has a size limit (:func:`cache_limit`: 64 GiB, or ``SSLSTUDIO_CACHE_LIMIT_GB``):
before a new cache is written, the least recently used ones are deleted until it fits (a cache
in use by another run stays readable: its memory map outlives the file's name on Linux and
macOS, and Windows refuses the delete, which is then skipped).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sslstudio.core.data.scan import ImageIndex, SkippedFile, no_usable_images
from sslstudio.errors import NoUsableImagesError, SSLStudioError
from sslstudio.imaging import decode as imaging
from sslstudio.imaging.stain import normalise_tiles

CACHE_VERSION = 1
DISK_RESERVE = 512 * 2**20  # leave this much free on the disk after the cache
IN_MEMORY_LIMIT = 2 * 2**30
DEFAULT_LIMIT = 64 * 2**30


def cache_limit() -> int:
    """Bytes the decoded caches may take together (``SSLSTUDIO_CACHE_LIMIT_GB`` overrides)."""
    text = os.environ.get("SSLSTUDIO_CACHE_LIMIT_GB", "")
    try:
        return int(float(text) * 2**30) if text else DEFAULT_LIMIT
    except ValueError:
        return DEFAULT_LIMIT


def _size(n: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20)):
        if n >= scale // 10:
            return f"{n / scale:.1f} {unit}"
    return f"{n / 1024:.1f} KiB"


def make_room(cache_root: Path, need: int, limit: int) -> list[Path]:
    """Delete least recently used caches until ``need`` more bytes fit under ``limit``."""
    try:
        caches = [
            (p.with_suffix(".json").stat().st_mtime, p.stat().st_size, p)
            for p in cache_root.glob("*.npy")
            if p.with_suffix(".json").exists()
        ]
    except OSError:
        return []
    total = sum(size for _, size, _ in caches)
    removed = []
    for _, size, path in sorted(caches):  # oldest use first
        if total + need <= limit:
            break
        try:
            path.unlink()
            path.with_suffix(".json").unlink(missing_ok=True)
        except OSError:
            continue  # in use where deleting an open file is refused (Windows)
        total -= size
        removed.append(path)
    return removed


class CacheCancelled(Exception):
    pass


@dataclass
class DecodedImages:
    """Rows of ``array`` correspond to ``index.images[rows[i]]``; ``failed`` lists files that did
    not decode."""

    array: np.ndarray  # (len(index.images), S, S, 3) uint8, possibly a read-only memmap
    rows: np.ndarray  # (N,) int64: the rows of ``array`` (= images of the index) that decoded
    index: ImageIndex
    failed: list[SkippedFile] = field(default_factory=list)
    location: str = ""  # file path, or "memory"
    # the run's input normalisation (sslstudio.imaging.stain), applied to every batch read: the
    # loader, the probes and embedding all read through here; the cache itself stays raw
    input_norm: str = "none"

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    @property
    def side(self) -> int:
        return int(self.array.shape[1])

    def labels(self) -> np.ndarray | None:
        """Class index per row, or None when the folder has no class subfolders."""
        all_labels = self.index.labels()
        if all_labels is None:
            return None
        return np.asarray(all_labels, dtype=np.int64)[self.rows]

    def batch(self, idx: np.ndarray) -> np.ndarray:
        """``(B, S, S, 3)`` uint8 copy of usable images ``idx`` (positions in ``rows``)."""
        r = self.rows[np.asarray(idx)]
        order = np.argsort(r)  # sorted reads are kinder to a memory-mapped file
        out = np.empty((len(r), *self.array.shape[1:]), dtype=np.uint8)
        out[order] = self.array[r[order]]
        return normalise_tiles(out, self.input_norm)

    def relpaths(self) -> list[str]:
        return [self.index.images[int(r)].path for r in self.rows]


def cache_key(index: ImageIndex, side: int) -> str:
    h = hashlib.sha256(f"{CACHE_VERSION}|{side}|{index.fingerprint()}".encode())
    return h.hexdigest()[:24]


def build_cache(
    index: ImageIndex,
    side: int,
    cache_root: Path | None,
    *,
    progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
    workers: int | None = None,
) -> DecodedImages:
    """Decode every image of ``index`` to ``side x side`` (reusing an earlier cache when valid).

    Args:
        cache_root: folder for the ``.npy`` file; ``None`` keeps the cache in memory.
    Raises:
        NoUsableImagesError: nothing decoded. CacheCancelled: ``cancel`` was set.
    """
    n = len(index.images)
    if n == 0:
        raise NoUsableImagesError(f"no usable images in {index.root}: {index.summary()}")
    key = cache_key(index, side)
    if cache_root is not None:
        found = _open_existing(cache_root, key, index)
        if found is not None:
            return found
    target = _cache_file(cache_root, key, n * side * side * 3)
    tmp, arr = _open_array(cache_root, target, (n, side, side, 3))
    try:
        ok, failed = _decode_into(arr, index, side, progress, cancel, workers)
    except BaseException:
        del arr
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise
    rows = np.flatnonzero(ok)
    if rows.size == 0:
        if tmp is not None:
            del arr
            tmp.unlink(missing_ok=True)
        raise no_usable_images(index, failed)  # "3 truncated, 2 not images": scan's and ours
    if tmp is None:
        return DecodedImages(arr, rows, index, failed, "memory")
    arr.flush()
    del arr
    _keep(cache_root, tmp, target, rows, failed, side)
    found = _open_existing(cache_root, key, index)
    if found is None:
        raise SSLStudioError(f"the decoded cache in {cache_root} could not be read back")
    return found


def _cache_file(cache_root: Path | None, key: str, need: int) -> Path | None:
    """Where the decoded pixels go on disk, or None to keep them in memory; refuses a cache
    neither the disk nor memory can hold."""
    target: Path | None = None
    limit = cache_limit()
    if cache_root is not None and need <= limit:
        try:
            cache_root.mkdir(parents=True, exist_ok=True)
            make_room(cache_root, need, limit)
            free = shutil.disk_usage(cache_root).free
        except OSError:
            free = 0
        if free - need >= DISK_RESERVE:
            target = cache_root / f"{key}.npy"
    if target is None and need > IN_MEMORY_LIMIT:
        where = (
            f"over the cache limit of {_size(limit)} (SSLSTUDIO_CACHE_LIMIT_GB)"
            if need > limit
            else f"and {cache_root} lacks the space"
        )
        raise SSLStudioError(
            f"the decoded cache needs {_size(need)} {where}; "
            "free some disk space, raise the limit or lower the image size"
        )
    return target


def _decode_into(arr, index: ImageIndex, side: int, progress, cancel, workers):
    """Decode every image into ``arr`` on a thread pool: (decoded mask, files that failed)."""
    n = len(index.images)
    ok = np.zeros(n, dtype=bool)
    failed: list[SkippedFile] = []
    root = Path(index.root)

    def work(i: int) -> tuple[int, SkippedFile | None]:
        rec = index.images[i]
        try:
            arr[i] = imaging.decode_resized(root / rec.path, side)
            return i, None
        except imaging.DecodeError as exc:
            return i, SkippedFile(rec.path, exc.reason, exc.error)

    with ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 2)) as pool:
        chunk = 256
        for start in range(0, n, chunk):
            if cancel is not None and cancel.is_set():
                raise CacheCancelled()
            for i, bad in pool.map(work, range(start, min(n, start + chunk))):
                if bad is None:
                    ok[i] = True
                else:
                    failed.append(bad)
            if progress is not None:
                progress(min(n, start + chunk), n)
    return ok, failed


def _keep(cache_root, tmp: Path, target: Path, rows, failed: list[SkippedFile], side: int) -> None:
    """Rename the written pixels into place beside their metadata, or remove both and say why."""
    meta = {
        "rows": rows.tolist(),
        "failed": [[f.path, f.reason, f.error] for f in failed],
        "side": side,
    }
    meta_tmp = target.with_suffix(".json.tmp")
    try:
        meta_tmp.write_text(json.dumps(meta), encoding="utf-8")
        os.replace(tmp, target)
        os.replace(meta_tmp, target.with_suffix(".json"))
    except OSError as exc:  # the decoded pixels are lost with the file: say why, keep none
        for p in (tmp, meta_tmp):
            p.unlink(missing_ok=True)
        raise SSLStudioError(f"could not write the decoded cache in {cache_root}: {exc}") from exc


def _open_array(
    cache_root: Path | None, target: Path | None, shape: tuple[int, ...]
) -> tuple[Path | None, np.ndarray]:
    """The array to decode into: a temp file beside ``target`` (stray ones of dead processes
    removed first), or memory when there is no target or the file cannot be made."""
    if target is None or cache_root is None:
        return None, np.empty(shape, dtype=np.uint8)
    for stray in cache_root.glob(".tmp-*"):
        pid = stray.name.split("-")[1]
        if pid.isdigit() and not pid_alive(int(pid)):
            stray.unlink(missing_ok=True)
    tmp = target.with_name(f".tmp-{os.getpid()}-{target.name}")
    try:
        return tmp, np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
    except OSError as exc:  # a full disk or a file-size limit
        tmp.unlink(missing_ok=True)
        if math.prod(shape) > IN_MEMORY_LIMIT:
            raise SSLStudioError(
                f"could not write the decoded cache in {cache_root}: {exc.strerror or exc}; "
                "free some disk space or lower the image size"
            ) from exc
        return None, np.empty(shape, dtype=np.uint8)


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (then its temp files are in use)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def _open_existing(cache_root: Path, key: str, index: ImageIndex) -> DecodedImages | None:
    npy, meta_path = cache_root / f"{key}.npy", cache_root / f"{key}.json"
    if not (npy.is_file() and meta_path.is_file()):
        return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        arr = np.load(npy, mmap_mode="r")
        os.utime(meta_path)  # "last used": the size limit deletes the least recently used first
        rows = np.asarray(meta["rows"], dtype=np.int64)
        failed = [SkippedFile(p, r, e) for p, r, e in meta["failed"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None  # a damaged cache is rebuilt, never trusted
    if (
        arr.ndim != 4
        or arr.shape[0] != len(index.images)
        or (rows.size and rows.max() >= arr.shape[0])
    ):
        return None
    return DecodedImages(arr, rows, index, failed, str(npy))
