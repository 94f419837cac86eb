"""Qt models over core objects: the scanned images (with lazily decoded thumbnails), skipped files,
runs.

The image model never touches the disk in ``data()``: a thumbnail the view asks for (only
visible items are painted, so only they are asked for) is queued for decoding on a small thread
pool, newest request first, and the model announces it when it arrives. A grey tile stands in
until then. Decoded thumbnails live in an LRU dict of QPixmaps, so a 100k-image folder costs
memory only for what was recently on screen.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict, deque
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QAbstractListModel,
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSize,
    Qt,
    QThreadPool,
    Signal,
    Slot,
)
from PySide6.QtGui import QColor, QImage, QPixmap

from sslstudio.imaging import decode as imaging
from sslstudio.imaging import slides

_Index = QModelIndex | QPersistentModelIndex
_ROOT = QModelIndex()  # the invalid index: "no parent" in a flat model
MAX_QUEUED = (
    512  # older requests are dropped: they scrolled out of view and are re-asked if seen again
)


def numpy_to_qimage(arr: Any) -> QImage:
    """``(H, W, 3)`` uint8 -> a QImage that owns its pixels (safe to pass between threads)."""
    h, w = arr.shape[:2]
    return QImage(arr.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


class ThumbnailCache(QObject):
    """Decodes thumbnails off the GUI thread; ``loaded(row)`` fires in the GUI thread."""

    loaded = Signal(int)
    _delivered = Signal(int, int, object)  # generation, row, QImage | None; from pool threads

    def __init__(self, size: int = 96, capacity: int = 2000, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.size = size
        self.capacity = capacity
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(max(1, min(4, (os.cpu_count() or 2) - 1)))
        self._lock = threading.Lock()
        self._stack: deque[tuple[int, str]] = deque()
        self._pending: set[int] = set()
        self._draining = 0
        self._generation = 0
        self._closed = False
        self._pixmaps: OrderedDict[int, QPixmap] = OrderedDict()
        self._failed: set[int] = set()
        self.requested = 0  # counted for tests: only visible items may be asked for
        self.decoded = 0
        self._delivered.connect(self._on_delivered)

    def get(self, row: int, path: str) -> QPixmap | None:
        """The thumbnail of ``row`` if ready, else None (and it is queued)."""
        pm = self._pixmaps.get(row)
        if pm is not None:
            self._pixmaps.move_to_end(row)
            return pm
        if row in self._failed or self._closed:
            return None
        start = False
        with self._lock:
            if row not in self._pending:
                self._pending.add(row)
                self.requested += 1
                self._stack.append((row, path))
                if len(self._stack) > MAX_QUEUED:
                    old, _ = self._stack.popleft()
                    self._pending.discard(old)
            if self._stack and self._draining < self._pool.maxThreadCount():
                self._draining += 1
                start = True
        if start:
            self._pool.start(self._drain)
        return None

    def _drain(self) -> None:  # runs on a pool thread
        while True:
            with self._lock:
                if not self._stack or self._closed:
                    self._draining -= 1
                    return
                row, path = self._stack.pop()  # newest first: what is on screen now
                generation = self._generation
            try:
                image: QImage | None = numpy_to_qimage(imaging.decode_resized(path, self.size))
            except (imaging.DecodeError, OSError, ValueError):
                image = None
            if self._closed:
                continue
            self._delivered.emit(generation, row, image)

    @Slot(int, int, object)
    def _on_delivered(self, generation: int, row: int, image: QImage | None) -> None:
        if generation != self._generation:
            return  # a thumbnail of the previous folder
        with self._lock:
            self._pending.discard(row)
        self.decoded += 1
        if image is None:
            self._failed.add(row)
        else:
            self._pixmaps[row] = QPixmap.fromImage(image)  # QPixmap only on the GUI thread
            while len(self._pixmaps) > self.capacity:
                self._pixmaps.popitem(last=False)
        self.loaded.emit(row)

    def reset(self) -> None:
        """Forget everything (a new folder); thumbnails still in flight are ignored on arrival."""
        with self._lock:
            self._generation += 1
            self._stack.clear()
            self._pending.clear()
        self._pixmaps.clear()
        self._failed.clear()

    def shutdown(self) -> None:
        """Stop decoding and wait for the pool (call before the owner is destroyed)."""
        self._closed = True
        self.reset()
        self._pool.waitForDone()


class ImageListModel(QAbstractListModel):
    """The images of an ``ImageIndex``: label or file name, thumbnail, and a tooltip with facts."""

    def __init__(self, cache: ThumbnailCache, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._cache = cache
        self._index: Any = None
        self._rows = 0
        self._root = Path()
        self._placeholder = QPixmap(QSize(cache.size, cache.size))
        self._placeholder.fill(QColor(128, 128, 128, 60))
        cache.loaded.connect(self._on_loaded)

    def set_index(self, index: Any) -> None:
        self.beginResetModel()
        self._index = index
        self._rows = len(index.images) if index is not None else 0
        self._root = Path(index.root) if index is not None else Path()
        self._cache.reset()
        self.endResetModel()

    def rowCount(self, parent: _Index = _ROOT) -> int:  # noqa: N802 (Qt API)
        # kept, not counted: the icon-mode layout asks once per item (a million times for a
        # million images), so every instruction here is paid a million times
        return 0 if parent.isValid() else self._rows

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or self._index is None:
            return None
        rec = self._index.images[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return rec.label or display_name(rec.path)
        if role == Qt.ItemDataRole.DecorationRole:
            return self._cache.get(index.row(), str(self._root / rec.path)) or self._placeholder
        if role == Qt.ItemDataRole.ToolTipRole:
            size = f"{rec.width} × {rec.height} px" if rec.width else "size read when first decoded"
            return f"{rec.path}\n{size} · {rec.format.upper()} · {human_bytes(rec.size_bytes)}"
        if role == Qt.ItemDataRole.UserRole:
            return rec
        return None

    @Slot(int)
    def _on_loaded(self, row: int) -> None:
        if 0 <= row < self.rowCount():
            i = self.index(row)
            self.dataChanged.emit(i, i, [Qt.ItemDataRole.DecorationRole])


def display_name(path: str) -> str:
    """A file's name; a whole-slide tile as its slide's name and position: 'case1.svs 1120, 448'."""
    tile = slides.parse_address(path)
    if tile is None:
        return Path(path).name
    return f"{Path(tile.slide).stem} {tile.x}, {tile.y}"


class SkippedFilesModel(QAbstractTableModel):
    """Files the scan could not use, with the reason in words."""

    HEADERS = ("File", "Reason")

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._rows: list[Any] = []

    def set_skipped(self, skipped: list[Any]) -> None:
        self.beginResetModel()
        self._rows = list(skipped)
        self.endResetModel()

    def rowCount(self, parent: _Index = _ROOT) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: _Index = _ROOT) -> int:  # noqa: N802
        return 0 if parent.isValid() else 2

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:  # noqa: N802
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return self.HEADERS[section]
        return None

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        f = self._rows[index.row()]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
            text = f.path if index.column() == 0 else f.reason
            if role == Qt.ItemDataRole.ToolTipRole and f.error:
                text = f"{text}\n({f.error})"
            return text
        return None

    def as_text(self) -> str:
        """Tab-separated, for the clipboard (pastes into a spreadsheet as two columns)."""
        return "\n".join(f"{f.path}\t{f.reason}" for f in self._rows)


class RunTableModel(QAbstractTableModel):
    """The run history (:class:`sslstudio.gui.run.history.RunSummary` rows); ``SORT_ROLE`` gives raw
    values, so a ``QSortFilterProxyModel`` sorts dates and numbers as such, not as text."""

    HEADERS = (
        "Date",
        "Folder",
        "Method",
        "Backbone",
        "Size",
        "Steps",
        "Final loss",
        "kNN",
        "State",
    )
    SORT_ROLE = Qt.ItemDataRole.UserRole + 1
    _NUMERIC = frozenset({4, 5, 6, 7})

    def __init__(self, parent: QObject | None = None, now: Any = None) -> None:
        super().__init__(parent)
        self._rows: list[Any] = []
        self._now = now  # a clock for "today"/"yesterday" (tests pin it)
        self.state_colors: dict[str, str] = {}

    def set_runs(self, runs: list[Any]) -> None:
        self.beginResetModel()
        self._rows = list(runs)
        self.endResetModel()

    def run(self, row: int) -> Any:
        return self._rows[row]

    def runs(self) -> list[Any]:
        return list(self._rows)

    def rowCount(self, parent: _Index = _ROOT) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: _Index = _ROOT) -> int:  # noqa: N802
        return 0 if parent.isValid() else len(self.HEADERS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:  # noqa: N802
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return self.HEADERS[section]
        return None

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        r, col = self._rows[index.row()], index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text(r, col)
        if role == self.SORT_ROLE:
            values = (
                r.created,
                r.name.lower(),
                r.method,
                r.backbone,
                r.image_size or 0,
                r.steps_done,
                r.final_loss if r.final_loss is not None else float("inf"),
                r.last_knn if r.last_knn is not None else -1.0,
                r.state,
            )
            return values[col]
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"{r.path}\n{r.message}" if r.message else r.path
        if role == Qt.ItemDataRole.TextAlignmentRole and col in self._NUMERIC:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ForegroundRole and col == 8 and r.state in self.state_colors:
            return QColor(self.state_colors[r.state])
        return None

    def _text(self, r: Any, col: int) -> str:
        import time

        from sslstudio.gui.run.history import format_age

        if col == 0:
            return format_age(r.created, self._now() if self._now else time.time())
        if col == 5:
            total = f"{r.total_steps:,}" if r.total_steps else "?"
            return f"{r.steps_done:,} / {total}"
        if col == 6:
            return f"{r.final_loss:.4f}" if r.final_loss is not None else "–"
        if col == 7:
            return f"{r.last_knn:.1%}" if r.last_knn is not None else "–"
        if col == 4:
            return f"{r.image_size} px" if r.image_size else "–"
        return str((None, r.name, r.method, r.backbone, None, None, None, None, r.state)[col])


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"
