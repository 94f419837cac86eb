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

import dataclasses
import errno
import hashlib
import json
import os
import stat
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sslstudio import imaging
from sslstudio.core.errors import NoUsableImagesError

INDEX_VERSION = 1
_PROGRESS_INTERVAL = 1 / 30  # at most ~30 progress calls a second, whatever the file rate
_POLL = 0.05  # seconds between cancel checks while waiting on the pool


class ScanCancelled(Exception):
    """The scan was cancelled through its ``cancel`` event; nothing was returned."""


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


@dataclass(frozen=True)
class SkippedFile:
    """A file left out, with a user-facing reason and the exception class behind it (or '')."""

    path: str
    reason: str
    error: str = ""

    @property
    def category(self) -> str:
        return imaging.reason_category(self.reason)


@dataclass
class ImageIndex:
    """The result of a scan; ``images`` and ``skipped`` are sorted by path."""

    root: str
    images: list[ImageRecord] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    ignored: int = 0
    other: int = 0  # documents and data files (README.md, labels.csv): not images, not failures

    @property
    def classes(self) -> list[str]:
        """Sorted labels; [] unless every image sits in a subfolder and there are >= 2."""
        labels = {r.label for r in self.images}
        if not labels or None in labels or len(labels) < 2:
            return []
        return sorted(label for label in labels if label is not None)

    def labels(self) -> list[int] | None:
        """Class index of each image, or None when the folder has no classes."""
        classes = self.classes
        if not classes:
            return None
        lookup = {name: i for i, name in enumerate(classes)}
        return [lookup[r.label] for r in self.images if r.label is not None]

    def paths(self) -> list[Path]:
        root = Path(self.root)
        return [root / r.path for r in self.images]

    def skipped_counts(self) -> dict[str, int]:
        """Skipped files by reason category, most frequent first."""
        counts = Counter(s.category for s in self.skipped)
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    def summary(self) -> str:
        """One line, e.g. '124 images (8 classes) in /x; 3 skipped: 2 truncated, 1 not an image'."""
        n = len(self.images)
        text = f"{n} image{'' if n == 1 else 's'}"
        if self.classes:
            text += f" ({len(self.classes)} classes)"
        text += f" in {self.root}"
        if self.skipped:
            text += f"; {len(self.skipped)} skipped: {_describe(self.skipped_counts())}"
        if self.ignored:
            text += f"; {self.ignored} system file{'' if self.ignored == 1 else 's'} ignored"
        if self.other:
            text += f"; {self.other} non-image file{'' if self.other == 1 else 's'} ignored"
        return text

    def fingerprint(self) -> str:
        """sha256 over the images' (path, size, mtime): keys caches, detects a changed folder."""
        digest = hashlib.sha256()
        for r in sorted(self.images, key=lambda r: r.path):
            # NUL cannot occur in a file name, so the fields cannot run into each other.
            digest.update(
                f"{r.path}\0{r.size_bytes}\0{r.mtime_ns}\0".encode("utf-8", "surrogateescape")
            )
        return digest.hexdigest()

    def to_json(self) -> str:
        """Plain JSON (ASCII-escaped, so undecodable file names survive the round trip)."""
        return json.dumps(
            {
                "version": INDEX_VERSION,
                "root": self.root,
                "ignored": self.ignored,
                "other": self.other,
                "images": [asdict(r) for r in self.images],
                "skipped": [asdict(s) for s in self.skipped],
            }
        )

    @classmethod
    def from_json(cls, text: str) -> ImageIndex:
        """Inverse of :meth:`to_json`. Raises ValueError for another version or a bad document."""
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("version") != INDEX_VERSION:
            raise ValueError("not an SSL Studio image index (or from another version)")
        try:
            return cls(
                root=str(data["root"]),
                images=[ImageRecord(**r) for r in data["images"]],
                skipped=[SkippedFile(**s) for s in data["skipped"]],
                ignored=int(data["ignored"]),
                other=int(data.get("other", 0)),
            )
        except (KeyError, TypeError) as e:
            raise ValueError(f"damaged image index: {e}") from e


def _describe(counts: dict[str, int]) -> str:
    """'2 truncated, 1 not an image' (and '3 not images')."""
    parts = []
    for category, n in counts.items():
        if category == "not an image" and n > 1:
            category = "not images"
        parts.append(f"{n} {category}")
    return ", ".join(parts)


def require_usable(index: ImageIndex) -> None:
    """Raise NoUsableImagesError with what went wrong when the index holds no images."""
    if not index.images:
        raise no_usable_images(index)


def no_usable_images(index: ImageIndex, failed: Sequence[SkippedFile] = ()) -> NoUsableImagesError:
    """The error for nothing to train on: what the scan skipped and what then ``failed`` to decode."""
    everything = dataclasses.replace(index, skipped=[*index.skipped, *failed])
    if everything.skipped:
        detail = _describe(everything.skipped_counts())
    else:
        detail = "the folder holds no image files"
    return NoUsableImagesError(
        f"no usable images in {index.root}: {detail}. Add JPEG, PNG, TIFF, BMP, WebP or GIF "
        "images (one subfolder per class if you have labels)."
    )


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
    reporter = _Progress(progress)
    pending: set[Future[ImageRecord | SkippedFile]] = set()

    def collect(timeout: float | None) -> None:
        nonlocal pending
        done, pending = wait(pending, timeout=timeout, return_when=FIRST_COMPLETED)
        for future in done:
            result = future.result()
            if isinstance(result, ImageRecord):
                index.images.append(result)
            elif result.reason == "not an image" and _is_document(result.path):
                index.other += 1
            else:
                index.skipped.append(result)
        reporter.add(len(done))

    with ThreadPoolExecutor(n_workers, thread_name_prefix="sslstudio-scan") as pool:
        try:
            for candidate in _walk(index, cancel):
                while len(pending) >= 4 * n_workers:  # bounded: the walk never runs far ahead
                    _check(cancel)
                    collect(_POLL)
                pending.add(pool.submit(_judge, candidate, verify, channels))
                reporter.add(0)
            reporter.total = reporter.done + len(pending)
            while pending:
                _check(cancel)
                collect(_POLL)
        except BaseException:
            for future in pending:
                future.cancel()  # in-flight decodes finish (one image each), queued ones never start
            raise
    reporter.finish()
    index.images.sort(key=lambda r: r.path)
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


def _judge(
    c: _Candidate, verify: bool, channels: imaging.Channels | None
) -> ImageRecord | SkippedFile:
    try:
        info = imaging.read_info(c.path, channels=channels, verify=verify)
    except imaging.DecodeError as e:
        return SkippedFile(c.rel, e.reason, e.error)
    label = c.rel.split("/", 1)[0] if "/" in c.rel else None
    return ImageRecord(c.rel, info.width, info.height, info.format, label, c.size, c.mtime_ns)


def _walk(index: ImageIndex, cancel: threading.Event | None) -> Iterator[_Candidate]:
    """Depth-first, sorted, one folder listing in memory at a time; junk and bad links noted."""
    top = os.stat(index.root)
    seen = {(top.st_dev, top.st_ino)}  # every folder entered once: loops and duplicates end here
    stack: list[tuple[str, str, frozenset[tuple[int, int]]]] = [(index.root, "", frozenset(seen))]
    while stack:
        folder, rel, ancestors = stack.pop()
        try:
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
