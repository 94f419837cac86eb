"""Scan a folder into an :class:`ImageIndex`: the usable images, and why every other file is not.

Two phases. The walk streams (``os.scandir``, one folder at a time) while a thread pool
type-checks the files it yields by their first bytes, a bounded number in flight, so memory
stays flat; then the headers of every image are read (with ``verify``, every image decoded),
unless the folder holds more than ``HEADER_LIMIT`` images: its sizes are then read lazily.
Files are judged by content: PNG bytes named ``.jpg`` are an image, a text file named ``.png``
is skipped as "not an image". Whole-slide images become tiles (:mod:`sslstudio.imaging.slides`). OS
junk (``.DS_Store``, ``._x.jpg``, ``Thumbs.db``, hidden files) is counted as ignored, never as
a failure. Symlinks to files and folders are followed; broken links and loops are reported,
and every folder is entered at most once, so the walk always ends. Given the previous scan,
files of unchanged folders keep its verdicts (:mod:`sslstudio.core.data.rescan`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from functools import partial
from pathlib import Path

from sslstudio.core.data.found import Candidate as _Candidate
from sslstudio.core.data.found import Columns as _Columns
from sslstudio.core.data.found import Verdict as _Verdict
from sslstudio.core.data.index import (  # noqa: F401  (re-exported: the public names of a scan)
    INDEX_VERSION,
    ImageIndex,
    ImageRecord,
    SkippedFile,
    no_usable_images,
    require_usable,
)
from sslstudio.core.data.rescan import Previous, reuse_unchanged
from sslstudio.errors import NoUsableImagesError
from sslstudio.imaging import decode as imaging
from sslstudio.imaging import slides

_PROGRESS_INTERVAL = 1 / 30  # at most ~30 progress calls a second, whatever the file rate
_POLL = 0.05  # seconds between cancel checks while waiting on the pool
# A folder of up to this many images has every header read (with verify, every image decoded);
# a bigger one is listed and type-checked by magic bytes, its sizes read lazily. 50k headers
# take ~6 s on 2 cores; a million would take minutes.
HEADER_LIMIT = 50_000
_HEADER_CHUNK = 8  # files per pool task while reading headers (a task is ~1 ms)
_SNIFF_CHUNK = 256  # files per pool task while sniffing (a task is ~1 ms)
_IO_THREADS = 8
_SLIDE_BYTES = 2**20  # a TIFF past the header limit and bigger than this is checked for a slide


class ScanCancelled(Exception):
    """The scan was cancelled through its ``cancel`` event; nothing was returned."""


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
    previous: ImageIndex | None = None,
) -> ImageIndex:
    """Index every image under ``root`` (recursively), in path order.

    Args:
        root: the folder; first-level subfolders become class labels.
        verify: decode every image fully (catches truncation); False reads headers only.
        progress: called as ``progress(done, total)``: files listed with total None while the
            walk goes on, then headers read of total; at most ~30 times a second, and at the end.
        cancel: when set, the scan stops within ~50 ms and raises :class:`ScanCancelled`.
        channels: channel choice for multi-channel TIFFs (see :mod:`sslstudio.imaging.decode`).
        workers: decoding threads (default: CPU count, at most 8).
        header_limit: a folder of at most this many images has every header read (and with
            ``verify`` every image decoded); a bigger one is only listed and type-checked by
            magic bytes, its sizes 0 until read lazily (``ImageIndex.sizes``).
        tiling: how whole-slide images become tiles (:mod:`sslstudio.imaging.slides`); None skips
        them.
        previous: the last scan of this folder with these settings: files of folders that did
            not change take its verdicts instead of being opened (:mod:`.rescan`).

    Raises:
        NoUsableImagesError: ``root`` does not exist or is not a folder.
        ScanCancelled: ``cancel`` was set.
    """
    index = ImageIndex(root=os.path.abspath(_folder(root)))
    n_workers = workers or min(8, os.cpu_count() or 1)
    # Sniffing waits on the disk (8 threads keep a cold disk ~2x busier than 1); reading headers
    # is Python and Pillow under the GIL, where threads beyond the cores only contend.
    io_workers = max(n_workers, _IO_THREADS)
    reporter = _Progress(progress)
    found = _Columns()
    with ThreadPoolExecutor(io_workers, thread_name_prefix="sslstudio-scan") as pool:
        # 1: list and type-check every file by its magic bytes, in chunks, while the walk goes on
        last = None
        if previous is not None:  # a big index: unchanged folders' rows are taken in bulk
            small = len(previous.images) <= header_limit
            last = Previous(previous, into=None if small else found)
        walk = _walk(index, cancel, last)
        if last is not None:
            walk = reuse_unchanged(walk, index, last, small)
        _run(
            pool,
            _chunks(walk, _SNIFF_CHUNK),
            partial(_each, judge=_sniff),
            found,
            index,
            reporter,
            cancel,
            max(4 * n_workers, io_workers),
        )
        # 2: headers (with verify: whole decodes) of every image of a folder up to header_limit;
        # past it only of TIFFs big enough to be slides, the rest read lazily
        rows = _header_rows(found, header_limit, tiling)
        reporter.total = len(rows) or reporter.done  # progress: listed files, then headers read
        reporter.done = 0 if rows else reporter.done

        def read(c: _Candidate) -> tuple[_Candidate, _Verdict]:
            return c, _judge(c, verify, channels, tiling)

        headers = partial(_each, judge=read, slots=threading.Semaphore(n_workers))
        work = _chunks((found.candidate(index.root, k) for k in rows), _HEADER_CHUNK)
        _run(pool, work, headers, found, index, reporter, cancel, 4 * n_workers)
    _check(cancel)
    reporter.finish()
    index.images = found.table()
    index.skipped.sort(key=lambda s: s.path)
    return index


def _folder(root: str | os.PathLike[str]) -> Path:
    """``root`` as a folder that exists, or the one-line reason it cannot be scanned."""
    if not str(root).strip():  # Path("") is the current folder: never scanned by accident
        raise NoUsableImagesError("no folder given: choose a folder of images")
    root_path = Path(root).expanduser()
    if not root_path.exists():
        raise NoUsableImagesError(f"folder {root_path} does not exist: choose a folder of images")
    if not root_path.is_dir():
        raise NoUsableImagesError(
            f"{root_path} is not a folder: choose the folder holding the images"
        )
    return root_path


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


def _run(pool, chunks, judge, found, index, reporter, cancel, in_flight: int) -> None:
    """Judge ``chunks`` on ``pool`` with at most ``in_flight`` chunks pending, filing results."""
    pending: set[Future[list[tuple[_Candidate, _Verdict]]]] = set()

    def collect(timeout: float | None) -> None:
        nonlocal pending
        done, pending = wait(pending, timeout=timeout, return_when=FIRST_COMPLETED)
        for future in done:
            results = future.result()
            for candidate, verdict in results:
                found.file(candidate, verdict, index)
            reporter.add(len(results))

    try:
        for chunk in chunks:
            while len(pending) >= in_flight:  # bounded: the walk never runs far ahead
                _check(cancel)
                collect(_POLL)
            pending.add(pool.submit(judge, chunk, cancel))
            reporter.add(0)
        while pending:
            _check(cancel)
            collect(_POLL)
    except BaseException:
        for future in pending:
            future.cancel()  # in-flight chunks stop at their next file, queued ones never start
        raise


def _chunks(items: Iterator[_Candidate], size: int) -> Iterator[list[_Candidate]]:
    chunk: list[_Candidate] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _header_rows(
    found: _Columns, header_limit: int, tiling: slides.SlideOptions | None
) -> list[int]:
    n = len(found.paths)  # a big rescan's carried rows count too: as big as the folder is
    if n + found.carried <= header_limit:  # every header not read yet (a rescan reuses known)
        return [k for k in range(n) if found.width[k] == 0]
    if tiling is None:
        return []
    return [
        k
        for k in range(n)
        if found.formats[k] == "slide"
        or (found.formats[k] == "tiff" and found.size[k] > _SLIDE_BYTES)
    ]


def _each(
    chunk: list[_Candidate],
    cancel: threading.Event | None,
    judge: Callable[[_Candidate], tuple[_Candidate, _Verdict]],
    slots: threading.Semaphore | None = None,
) -> list[tuple[_Candidate, _Verdict]]:
    """Judge a few files on a pool thread (holding one of ``slots``, when given); a partial
    list once ``cancel`` is set: the scan is being abandoned."""
    out: list[tuple[_Candidate, _Verdict]] = []
    with slots or contextlib.nullcontext():
        for c in chunk:
            if cancel is not None and cancel.is_set():
                break
            out.append(judge(c))
    return out


def _unreadable(c: _Candidate, e: OSError) -> SkippedFile:
    return SkippedFile(c.rel, f"unreadable ({type(e).__name__})", type(e).__name__)


def _judge(
    c: _Candidate,
    verify: bool,
    channels: imaging.Channels | None,
    tiling: slides.SlideOptions | None = None,
) -> _Verdict:
    if slides.is_multi_file(c.path):
        return _multi_file(c, tiling)
    try:
        info = imaging.read_info(c.path, channels=channels, verify=verify)
    except imaging.DecodeError as e:
        if tiling is not None and e.reason.startswith("whole-slide") and slides.is_slide(c.path):
            return _tiles(c, tiling)
        if e.reason.startswith("whole-slide") and not slides.available():
            return SkippedFile(
                c.rel, f"{e.reason}; install openslide: pip install 'sslstudio[slides]'"
            )
        return SkippedFile(c.rel, e.reason, e.error)
    if tiling is not None and info.format == "tiff" and info.frames > 1 and slides.is_slide(c.path):
        return _tiles(c, tiling)  # a pyramid small enough to read whole is still a slide
    return info.width, info.height, info.format


def _multi_file(c: _Candidate, tiling: slides.SlideOptions | None) -> _Verdict:
    """A multi-file slide's index file (MRXS, VMS, VMU): its tiles, or why there are none."""
    kind = os.path.splitext(c.rel)[1][1:].upper()
    if not slides.available():
        return SkippedFile(
            c.rel, f"whole-slide image ({kind}); install openslide: pip install 'sslstudio[slides]'"
        )
    if tiling is None:
        return SkippedFile(c.rel, f"whole-slide image ({kind}): tiling is off")
    found = _tiles(c, tiling) if slides.is_slide(c.path) else None
    if isinstance(found, list):
        return found
    if found is not None and not found.reason.startswith("unreadable"):
        return found  # read, but no tissue
    return SkippedFile(
        c.rel,
        f"whole-slide image ({kind}): OpenSlide cannot open it (are the files it names "
        "beside it, as the scanner wrote them?)",
        found.error if found is not None else "",
    )


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
    if c.known is not None:
        return c, c.known
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
    if slides.is_multi_file(c.rel):
        return c, (0, 0, "slide")  # an index file: OpenSlide judges it with the headers
    if st.st_size == 0:
        return c, SkippedFile(c.rel, "empty file")
    fmt = imaging.sniff_format(head)
    return c, ((0, 0, fmt) if fmt is not None else SkippedFile(c.rel, "not an image"))


def _walk(
    index: ImageIndex, cancel: threading.Event | None, last: Previous | None = None
) -> Iterator[_Candidate]:
    """Depth-first, sorted, one folder listing in memory at a time; junk and bad links noted.
    A folder whose time is the one ``last`` recorded is not listed: its entries are the last's."""
    top = os.stat(index.root)
    seen = {(top.st_dev, top.st_ino)}  # every folder entered once: loops and duplicates end here
    stack: list[tuple[str, str, frozenset[tuple[int, int]]]] = [(index.root, "", frozenset(seen))]
    while stack:
        folder, rel, ancestors = stack.pop()
        try:
            mtime = index.folders[rel] = os.stat(folder).st_mtime_ns  # before listing
            if last is not None and last.unchanged(rel, mtime):
                yield from _as_before(index, last, rel, ancestors, seen, stack, cancel)
                continue
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as e:
            index.skipped.append(
                SkippedFile(rel or ".", f"unreadable folder ({type(e).__name__})", type(e).__name__)
            )
            continue
        subfolders = []
        owned = slides.owned_names(folder, [e.name for e in entries])  # a slide's other files
        for entry in entries:
            _check(cancel)
            if entry.name in owned or imaging.is_ignored_name(entry.name):
                index.count_in(rel, ignored=1)
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
                _enter(index, st, entry.path, rel_path, ancestors, seen, subfolders)
            elif stat.S_ISREG(st.st_mode):
                yield _Candidate(rel_path, entry.path, st.st_size, st.st_mtime_ns)
            else:
                index.skipped.append(SkippedFile(rel_path, "not an image (special file)"))
        stack.extend(reversed(subfolders))


def _enter(index, st, path, rel_path, ancestors, seen, subfolders) -> None:
    """Queue a subfolder for the walk, unless it was entered already (a loop, a duplicate)."""
    key = (st.st_dev, st.st_ino)
    if key in ancestors:
        index.skipped.append(SkippedFile(rel_path, "symlink loop"))
    elif key in seen:
        index.skipped.append(SkippedFile(rel_path, "duplicate folder (already scanned)"))
    else:
        seen.add(key)
        subfolders.append((path, rel_path, ancestors | {key}))


def _as_before(index, last: Previous, rel, ancestors, seen, stack, cancel) -> Iterator[_Candidate]:
    """An unchanged folder without listing it: the last scan's entries (their verdicts are
    attached by ``reuse_unchanged``), counts and subfolders (each stat-ed: it may have changed)."""
    ignored, other = last.counts(rel)
    index.count_in(rel, ignored, other)
    _check(cancel)
    if last.into is not None:
        last.carry(rel, index)
    else:  # a small index: each file is checked against its size and time (reuse_unchanged)
        for rel_path in last.entries(rel):
            yield _Candidate(rel_path, os.path.join(index.root, rel_path), -1, -1)
    subfolders: list[tuple[str, str, frozenset[tuple[int, int]]]] = []
    for sub in last.subfolders(rel):
        path = os.path.join(index.root, sub)
        try:
            st = os.stat(path)
        except OSError as e:
            name = type(e).__name__
            index.skipped.append(SkippedFile(sub, f"unreadable folder ({name})", name))
            continue
        _enter(index, st, path, sub, ancestors, seen, subfolders)
    stack.extend(reversed(subfolders))


def _bad_entry(entry: os.DirEntry[str], rel_path: str, e: OSError) -> SkippedFile:
    name = type(e).__name__
    if e.errno == errno.ELOOP:
        return SkippedFile(rel_path, "symlink loop", name)
    if entry.is_symlink() and isinstance(e, FileNotFoundError):
        return SkippedFile(rel_path, "broken symlink", name)
    return SkippedFile(rel_path, f"unreadable ({name})", name)
