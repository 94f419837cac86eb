"""Scan a folder into an :class:`ImageIndex`: the usable images, and why every other file is not.

The walk streams (``os.scandir``, one folder at a time) while a small thread pool judges the
files it yields (Pillow releases the GIL while decoding), with a bounded number in flight so
memory stays flat on 100k-file folders. Files are judged by content: PNG bytes named ``.jpg``
are an image, a text file named ``.png`` is skipped as "not an image". OS junk (``.DS_Store``,
``._x.jpg``, ``Thumbs.db``, hidden files) is counted as ignored, never as a failure. Symlinks
to files and folders are followed; broken links and loops are reported, and every folder is
entered at most once, so the walk always ends.
"""

from __future__ import annotations

import errno
import os
import stat
import threading
import time
from array import array
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from sslstudio import imaging, slides
from sslstudio.core.data.index import (  # noqa: F401  (re-exported: the public names of a scan)
    INDEX_VERSION,
    ImageIndex,
    ImageRecord,
    SkippedFile,
    no_usable_images,
    require_usable,
)
from sslstudio.core.data.table import RecordTable
from sslstudio.core.errors import NoUsableImagesError

_PROGRESS_INTERVAL = 1 / 30  # at most ~30 progress calls a second, whatever the file rate
_POLL = 0.05  # seconds between cancel checks while waiting on the pool
# Headers (and, with verify, whole decodes) are read for this many files during the scan; beyond
# it files are type-checked by their magic bytes only and their sizes read lazily. 50k headers
# take ~7 s on 2 cores; a million take minutes.
HEADER_LIMIT = 50_000
_HEADER_CHUNK = 8  # files per pool task while reading headers (a task is ~1 ms)
_SNIFF_CHUNK = 256  # files per pool task while sniffing (a task is ~1 ms)
_IO_THREADS = 8
_SLIDE_BYTES = 2**20  # a TIFF past the header limit and bigger than this is checked for a slide


_Verdict = tuple[int, int, str] | SkippedFile | list[slides.TileAddress]


class ScanCancelled(Exception):
    """The scan was cancelled through its ``cancel`` event; nothing was returned."""


@dataclass(frozen=True)
class _Candidate:
    rel: str
    path: str
    size: int
    mtime_ns: int


def scan_folder(
    root: str | os.PathLike[str],
    *,
    verify: bool = True,
    progress: Callable[[int, int | None], None] | None = None,
    cancel: threading.Event | None = None,
    channels: imaging.Channels | None = None,
    workers: int | None = None,
    header_limit: int = HEADER_LIMIT,
    tiling: slides.SlideOptions | None = slides.DEFAULT_TILING,
) -> ImageIndex:
    """Index every image under ``root`` (recursively), in path order.

    Args:
        root: the folder; first-level subfolders become class labels.
        verify: decode every image fully (catches truncation); False reads headers only.
        progress: called as ``progress(done, total)``, total None until the walk has finished;
            at most ~30 times a second and once at the end.
        cancel: when set, the scan stops within ~50 ms and raises :class:`ScanCancelled`.
        channels: channel choice for multi-channel TIFFs (see :mod:`sslstudio.imaging`).
        workers: decoding threads (default: CPU count, at most 8).
        header_limit: read headers (and with ``verify`` decode) of this many files; later files
            are type-checked by magic bytes and keep width/height 0 until read lazily.
        tiling: how whole-slide images become tiles (:mod:`sslstudio.slides`); None skips them.

    Raises:
        NoUsableImagesError: ``root`` does not exist or is not a folder.
        ScanCancelled: ``cancel`` was set.
    """
    root_path = Path(root).expanduser()
    if not root_path.exists():
        raise NoUsableImagesError(f"folder {root_path} does not exist: choose a folder of images")
    if not root_path.is_dir():
        raise NoUsableImagesError(
            f"{root_path} is not a folder: choose the folder holding the images"
        )
    index = ImageIndex(root=os.path.abspath(root_path))
    n_workers = workers or min(8, os.cpu_count() or 1)
    # Sniffing waits on the disk (8 threads keep a cold disk ~2x busier than 1); reading headers
    # is Python and Pillow under the GIL, where threads beyond the cores only contend.
    io_workers = max(n_workers, _IO_THREADS)
    header_slots = threading.Semaphore(n_workers)
    reporter = _Progress(progress)
    found = _Columns()
    pending: set[Future[list[tuple[_Candidate, tuple[int, int, str] | SkippedFile]]]] = set()

    def collect(timeout: float | None) -> None:
        nonlocal pending
        done, pending = wait(pending, timeout=timeout, return_when=FIRST_COMPLETED)
        for future in done:
            results = future.result()
            for candidate, result in results:
                if isinstance(result, list):  # a whole-slide image: its tissue tiles
                    for tile in result:
                        found.add(candidate, (tile.side, tile.side, "tile"), str(tile))
                elif isinstance(result, SkippedFile):
                    if result.reason == "not an image" and _is_document(result.path):
                        index.other += 1
                    else:
                        index.skipped.append(result)
                else:
                    found.add(candidate, result)
            reporter.add(len(results))

    headers_left, submitted = header_limit, 0
    with ThreadPoolExecutor(io_workers, thread_name_prefix="sslstudio-scan") as pool:
        try:
            chunk: list[_Candidate] = []
            for candidate in _walk(index, cancel):
                chunk.append(candidate)
                read = headers_left > 0
                if len(chunk) < (_HEADER_CHUNK if read else _SNIFF_CHUNK):
                    continue
                while len(pending) >= max(4 * n_workers, io_workers):  # the walk never runs far ahead
                    _check(cancel)
                    collect(_POLL)
                pending.add(
                    pool.submit(
                        _judge_chunk, chunk, read, verify, channels, cancel, header_slots, tiling
                    )
                )
                headers_left -= len(chunk)
                submitted += len(chunk)
                chunk = []
                reporter.add(0)
            if chunk:
                pending.add(
                    pool.submit(
                        _judge_chunk, chunk, headers_left > 0, verify, channels, cancel,
                        header_slots, tiling,
                    )  # fmt: skip
                )
                submitted += len(chunk)
            reporter.total = submitted
            while pending:
                _check(cancel)
                collect(_POLL)
        except BaseException:
            for future in pending:
                future.cancel()  # in-flight chunks stop at their next file, queued ones never start
            raise
    _check(cancel)
    reporter.finish()
    index.images = found.table()
    index.skipped.sort(key=lambda s: s.path)
    return index


# Files with these extensions that are not images are notes beside the images, not failures.
# A file with an image extension (or none) that is not an image is still skipped and reported.
_DOCUMENT_EXTENSIONS = frozenset(
    [
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
    ]
)


def _is_document(rel_path: str) -> bool:
    return os.path.splitext(rel_path)[1].lower() in _DOCUMENT_EXTENSIONS


def _check(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise ScanCancelled("scan cancelled")


class _Progress:
    """Counts judged files and calls the user's callback at most ~30 times a second."""

    def __init__(self, callback: Callable[[int, int | None], None] | None) -> None:
        self.callback = callback
        self.done = 0
        self.total: int | None = None
        self._last = 0.0

    def add(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if self.callback is not None and now - self._last >= _PROGRESS_INTERVAL:
            self._last = now
            self.callback(self.done, self.total)

    def finish(self) -> None:
        if self.callback is not None:
            self.callback(self.done, self.done)


def _judge_chunk(
    chunk: list[_Candidate],
    read_headers: bool,
    verify: bool,
    channels: imaging.Channels | None,
    cancel: threading.Event | None,
    header_slots: threading.Semaphore | None = None,
    tiling: slides.SlideOptions | None = None,
) -> list[tuple[_Candidate, _Verdict]]:
    """Judge a few files on a pool thread; stops early (partial list) once ``cancel`` is set."""
    if read_headers and header_slots is not None:
        with header_slots:  # at most one header-reading chunk per core at a time
            return _judge_chunk(chunk, read_headers, verify, channels, cancel, None, tiling)
    out: list[tuple[_Candidate, _Verdict]] = []
    for c in chunk:
        if cancel is not None and cancel.is_set():
            break
        if not read_headers:
            c, verdict = _sniff(c)
            if tiling is not None and verdict == (0, 0, "tiff") and c.size > _SLIDE_BYTES:
                verdict = _judge(c, verify, channels, tiling)  # maybe a slide: never lazy
            out.append((c, verdict))
            continue
        if c.size < 0:  # listed without a stat (see _walk)
            try:
                st = os.stat(c.path)
            except OSError as e:
                out.append((c, _unreadable(c, e)))
                continue
            c = _Candidate(c.rel, c.path, st.st_size, st.st_mtime_ns)
        out.append((c, _judge(c, verify, channels, tiling)))
    return out


def _unreadable(c: _Candidate, e: OSError) -> SkippedFile:
    return SkippedFile(c.rel, f"unreadable ({type(e).__name__})", type(e).__name__)


def _judge(
    c: _Candidate,
    verify: bool,
    channels: imaging.Channels | None,
    tiling: slides.SlideOptions | None = None,
) -> _Verdict:
    try:
        info = imaging.read_info(c.path, channels=channels, verify=verify)
    except imaging.DecodeError as e:
        if tiling is not None and e.reason.startswith("whole-slide") and slides.is_slide(c.path):
            return _tiles(c, tiling)
        if e.reason.startswith("whole-slide") and not slides.available():
            return SkippedFile(c.rel, f"{e.reason}; install openslide: pip install 'sslstudio[slides]'")
        return SkippedFile(c.rel, e.reason, e.error)
    if tiling is not None and info.format == "tiff" and info.frames > 1 and slides.is_slide(c.path):
        return _tiles(c, tiling)  # a pyramid small enough to read whole is still a slide
    return info.width, info.height, info.format


def _tiles(c: _Candidate, tiling: slides.SlideOptions) -> list[slides.TileAddress] | SkippedFile:
    try:
        found = slides.tiles(c.path, c.rel, tiling)
    except imaging.DecodeError as e:
        return SkippedFile(c.rel, e.reason, e.error)
    return found or SkippedFile(c.rel, "whole-slide image: no tissue found")


_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)


def _sniff(c: _Candidate) -> tuple[_Candidate, tuple[int, int, str] | SkippedFile]:
    """Type-check by magic bytes only (one open, its fstat and 32 bytes: the fewest system
    calls, which is what a cold disk charges for); width/height stay 0 until read lazily."""
    try:
        fd = os.open(c.path, _OPEN_FLAGS)  # non-blocking: a FIFO cannot hang the scan
        try:
            st = os.fstat(fd)
            head = os.read(fd, 32) if stat.S_ISREG(st.st_mode) else b""
        finally:
            os.close(fd)
    except OSError as e:
        return c, _unreadable(c, e)
    c = _Candidate(c.rel, c.path, st.st_size, st.st_mtime_ns)
    if not stat.S_ISREG(st.st_mode):
        return c, SkippedFile(c.rel, "not an image (special file)")
    if st.st_size == 0:
        return c, SkippedFile(c.rel, "empty file")
    fmt = imaging.sniff_format(head)
    return c, ((0, 0, fmt) if fmt is not None else SkippedFile(c.rel, "not an image"))


class _Columns:
    """The usable images found so far, kept compactly (no object per image) until sorted."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.size, self.mtime = array("q"), array("q")
        self.width, self.height = array("i"), array("i")
        self.formats: list[str] = []

    def add(self, c: _Candidate, facts: tuple[int, int, str], path: str = "") -> None:
        self.paths.append(path or c.rel)
        self.size.append(c.size)
        self.mtime.append(c.mtime_ns)
        self.width.append(facts[0])
        self.height.append(facts[1])
        self.formats.append(facts[2])

    def table(self) -> RecordTable:
        return RecordTable.build(
            self.paths, self.size, self.mtime, self.width, self.height, self.formats
        )


def _walk(index: ImageIndex, cancel: threading.Event | None) -> Iterator[_Candidate]:
    """Depth-first, sorted, one folder listing in memory at a time; junk and bad links noted."""
    top = os.stat(index.root)
    seen = {(top.st_dev, top.st_ino)}  # every folder entered once: loops and duplicates end here
    stack: list[tuple[str, str, frozenset[tuple[int, int]]]] = [(index.root, "", frozenset(seen))]
    while stack:
        folder, rel, ancestors = stack.pop()
        try:
            index.folders[rel] = os.stat(folder).st_mtime_ns  # before listing: a later add shows
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as e:
            index.skipped.append(
                SkippedFile(rel or ".", f"unreadable folder ({type(e).__name__})", type(e).__name__)
            )
            continue
        subfolders = []
        for entry in entries:
            _check(cancel)
            if imaging.is_ignored_name(entry.name):
                index.ignored += 1
                continue
            rel_path = f"{rel}/{entry.name}" if rel else entry.name
            if entry.is_file(follow_symlinks=False):  # from the listing itself, no system call
                yield _Candidate(rel_path, entry.path, -1, -1)  # stat on a pool thread, in parallel
                continue
            try:
                st = entry.stat()  # follows symlinks
            except OSError as e:
                index.skipped.append(_bad_entry(entry, rel_path, e))
                continue
            if stat.S_ISDIR(st.st_mode):
                key = (st.st_dev, st.st_ino)
                if key in ancestors:
                    index.skipped.append(SkippedFile(rel_path, "symlink loop"))
                elif key in seen:
                    index.skipped.append(
                        SkippedFile(rel_path, "duplicate folder (already scanned)")
                    )
                else:
                    seen.add(key)
                    subfolders.append((entry.path, rel_path, ancestors | {key}))
            elif stat.S_ISREG(st.st_mode):
                yield _Candidate(rel_path, entry.path, st.st_size, st.st_mtime_ns)
            else:
                index.skipped.append(SkippedFile(rel_path, "not an image (special file)"))
        stack.extend(reversed(subfolders))


def _bad_entry(entry: os.DirEntry[str], rel_path: str, e: OSError) -> SkippedFile:
    name = type(e).__name__
    if e.errno == errno.ELOOP:
        return SkippedFile(rel_path, "symlink loop", name)
    if entry.is_symlink() and isinstance(e, FileNotFoundError):
        return SkippedFile(rel_path, "broken symlink", name)
    return SkippedFile(rel_path, f"unreadable ({name})", name)
