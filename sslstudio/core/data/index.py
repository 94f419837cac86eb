"""What a scan found: the usable images (:class:`ImageIndex`) and why every other file is not.

Split from :mod:`sslstudio.core.data.scan`, which builds these; the images are held as columns
(:class:`~sslstudio.core.data.table.RecordTable`) so a million-image index stays small.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from sslstudio.core.data.records import ImageRecord  # noqa: F401  (part of this API)
from sslstudio.core.data.table import FORMATS, RecordTable
from sslstudio.errors import NoUsableImagesError
from sslstudio.imaging import decode as imaging

INDEX_VERSION = 1


@dataclass(frozen=True)
class IndexStats:
    """What the Data page shows; ``sizes`` (k, 2) are the known widths and heights."""

    images: int
    classes: dict[str, int]  # label -> count; {} without class subfolders
    formats: dict[str, int]  # "PNG" -> count, most frequent first
    sizes: np.ndarray
    total_bytes: int
    sizes_unknown: int  # images whose header is still unread (big folders read them lazily)
    slides: int = 0  # whole-slide images the tiles come from (formats["TILE"] tiles)

    @property
    def smallest(self) -> tuple[int, int] | None:
        return _extreme(self.sizes, np.argmin)

    @property
    def largest(self) -> tuple[int, int] | None:
        return _extreme(self.sizes, np.argmax)

    @property
    def median(self) -> tuple[int, int] | None:
        if not len(self.sizes):
            return None
        w, h = np.median(self.sizes, axis=0)
        return int(w), int(h)


def _extreme(sizes: np.ndarray, pick) -> tuple[int, int] | None:
    if not len(sizes):
        return None
    k = int(pick(sizes[:, 0] * sizes[:, 1]))
    return int(sizes[k, 0]), int(sizes[k, 1])


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
    images: Sequence[ImageRecord] = field(default_factory=list)  # a RecordTable after a scan
    skipped: list[SkippedFile] = field(default_factory=list)
    ignored: int = 0
    other: int = 0  # documents and data files (README.md, labels.csv): not images, not failures
    # every folder walked (relative path, "" for the root) and its mtime before it was listed:
    # a re-open compares them to tell an unchanged folder without listing it again
    folders: dict[str, int] = field(default_factory=dict)
    # per folder, where not zero: its (system files ignored, documents); a rescan takes them
    # for a folder it does not list again
    folder_counts: dict[str, tuple[int, int]] = field(default_factory=dict)

    def count_in(self, folder: str, ignored: int = 0, other: int = 0) -> None:
        """Add to the totals and to ``folder``'s own counts."""
        self.ignored, self.other = self.ignored + ignored, self.other + other
        i, o = self.folder_counts.get(folder, (0, 0))
        self.folder_counts[folder] = (i + ignored, o + other)

    @property
    def table(self) -> RecordTable:
        """The images as columns (converted once when built from a list of records)."""
        if not isinstance(self.images, RecordTable):
            self.images = RecordTable.from_records(self.images)
        return self.images

    @property
    def unread(self) -> int:
        """Images listed by magic bytes whose header (size) has not been read yet."""
        return int(self.table.unread().size)

    @property
    def classes(self) -> list[str]:
        """Sorted labels; [] unless every image sits in a subfolder and there are >= 2."""
        if isinstance(self.images, RecordTable):
            codes = self.images.label_codes()
            names = self.images.label_names
            if not len(codes) or (codes < 0).any() or len(names) < 2:
                return []
            return sorted(names)
        labels = {r.label for r in self.images}
        if not labels or None in labels or len(labels) < 2:
            return []
        return sorted(label for label in labels if label is not None)

    def labels(self) -> list[int] | None:
        """Class index of each image, or None when the folder has no classes."""
        classes = self.classes
        if not classes:
            return None
        if isinstance(self.images, RecordTable):  # label_names are sorted: codes are classes
            return self.images.label_codes().tolist()
        lookup = {name: i for i, name in enumerate(classes)}
        return [lookup[r.label] for r in self.images if r.label is not None]

    def paths(self) -> list[Path]:
        root = Path(self.root)
        return [root / r.path for r in self.images]

    def sizes(self, at_least: int = 2000, seed: int = 0) -> np.ndarray:
        """``(k, 2)`` width, height of every image whose size is known, after reading headers
        lazily for a random sample of the rest until ``at_least`` are known (or all are).

        A file whose header cannot be read stays unknown here; the decoder reports it later."""
        t = self.table
        width, height = t.columns["width"], t.columns["height"]
        short = min(at_least, len(t)) - int(np.count_nonzero(width))
        unread = t.unread()
        if short > 0 and unread.size:
            pick = np.random.default_rng(seed).choice(
                unread, min(short, unread.size), replace=False
            )
            root = Path(self.root)

            def read(rel: str) -> tuple[int, int] | None:
                try:
                    info = imaging.read_info(root / rel)
                except imaging.DecodeError:
                    return None
                return info.width, info.height

            t.fill_headers(np.sort(pick), read)
        known = np.flatnonzero(width)
        return np.stack([width[known], height[known]], axis=1).astype(np.int64)

    def stats(self) -> IndexStats:
        """Counts and sizes for the Data page, from the columns (no object per image)."""
        t = self.table
        c = t.columns
        n = len(t)
        classes: dict[str, int] = {}
        if self.classes:
            counts = np.bincount(t.label_codes(), minlength=len(t.label_names))
            classes = {name: int(k) for name, k in zip(t.label_names, counts)}
        fmt = np.bincount(np.asarray(c["fmt"], dtype=np.int64), minlength=len(FORMATS))
        formats = {
            FORMATS[k].upper(): int(fmt[k]) for k in np.argsort(-fmt, kind="stable") if fmt[k]
        }
        sizes = self.sizes() if n else np.zeros((0, 2), dtype=np.int64)
        tile, slides = self._tiles()
        # every file once on disk: the tiles of a slide share the slide's bytes
        on_disk = int(np.asarray(c["size_bytes"])[~tile].sum()) + sum(slides.values())
        return IndexStats(n, classes, formats, sizes, on_disk, n - len(sizes), len(slides))

    def _tiles(self) -> tuple[np.ndarray, dict[str, int]]:
        """Which rows are whole-slide tiles, and each slide's path with its size in bytes."""
        t = self.table
        size = np.asarray(t.columns["size_bytes"])
        tile = np.asarray(t.columns["fmt"]) == FORMATS.index("tile")
        return tile, {t.path(int(k)).rpartition("#")[0]: int(size[k]) for k in np.flatnonzero(tile)}

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
        tile, slides = self._tiles()
        if slides:
            many = "s" * (len(slides) != 1)
            text += f", {int(tile.sum())} of them tissue tiles of {len(slides)} slide{many}"
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
        return self.table.fingerprint()

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
                "folders": self.folders,
                "folder_counts": {k: list(v) for k, v in self.folder_counts.items()},
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
                folders={str(k): int(v) for k, v in data.get("folders", {}).items()},
                folder_counts={
                    str(k): (int(i), int(o)) for k, (i, o) in data.get("folder_counts", {}).items()
                },
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
    """The error for nothing to train on: what the scan skipped and what then ``failed`` to
    decode."""
    everything = dataclasses.replace(index, skipped=[*index.skipped, *failed])
    if everything.skipped:
        detail = _describe(everything.skipped_counts())
    else:
        detail = "the folder holds no image files"
    return NoUsableImagesError(
        f"no usable images in {index.root}: {detail}. Add JPEG, PNG, TIFF, BMP, WebP or GIF "
        "images (one subfolder per class if you have labels)."
    )
