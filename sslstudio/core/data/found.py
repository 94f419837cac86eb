"""What a scan has found so far: the files it is judging, and the usable images as columns.

Split from :mod:`sslstudio.core.data.scan`: a candidate file on its way through the scan's
two phases, the verdict on it, and :class:`Columns`, which keeps the images compactly (no
object per image) until they are sorted into a :class:`~sslstudio.core.data.table.RecordTable`.
"""

from __future__ import annotations

import os
from array import array
from dataclasses import dataclass
from typing import Any

import numpy as np

from sslstudio.core.data.index import ImageIndex, SkippedFile
from sslstudio.core.data.splice import splice
from sslstudio.core.data.table import RecordTable
from sslstudio.imaging import slides
from sslstudio.imaging.filetypes import is_document

# width, height, format; or why the file was set aside; or a slide's tissue tiles
Verdict = tuple[int, int, str] | SkippedFile | list[slides.TileAddress]


@dataclass(frozen=True)
class Candidate:
    rel: str
    path: str
    size: int  # -1: not stat-ed yet (see _walk)
    mtime_ns: int
    row: int = -1  # phase 2: the row of the image in the columns
    known: Any = None  # the verdict of the previous scan, reused (see rescan.py)


class Columns:
    """The usable images found so far, kept compactly (no object per image) until sorted.

    Phase 1 adds a row per image (width/height 0); phase 2 re-files rows with their headers
    read (the candidate's ``row`` says which), drops the ones that fail and replaces slides by
    their tiles."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.size, self.mtime = array("q"), array("q")
        self.width, self.height = array("i"), array("i")
        self.formats: list[str] = []
        self.dropped: set[int] = set()
        self.base: RecordTable | None = None  # a rescan: the last table, and which rows it keeps
        self.kept: np.ndarray | None = None

    def candidate(self, root: str, k: int) -> Candidate:
        rel = self.paths[k]
        return Candidate(rel, os.path.join(root, rel), self.size[k], self.mtime[k], k)

    def file(self, c: Candidate, verdict: Verdict, index: ImageIndex) -> None:
        if isinstance(verdict, tuple):
            if c.row < 0:
                self.add(c, verdict)
            else:
                self.width[c.row], self.height[c.row] = verdict[0], verdict[1]
                self.formats[c.row] = verdict[2]
            return
        if c.row >= 0:
            self.dropped.add(c.row)
        if isinstance(verdict, list):  # a whole-slide image: its tissue tiles
            for tile in verdict:
                self.add(c, (tile.side, tile.side, "tile"), str(tile))
        elif verdict.reason == "not an image" and is_document(verdict.path):
            index.count_in(verdict.path.rpartition("/")[0], other=1)
        else:
            index.skipped.append(verdict)

    def add(self, c: Candidate, facts: tuple[int, int, str], path: str = "") -> None:
        self.paths.append(path or c.rel)
        self.size.append(c.size)
        self.mtime.append(c.mtime_ns)
        self.width.append(facts[0])
        self.height.append(facts[1])
        self.formats.append(facts[2])

    def keep(self, base: RecordTable, rows: np.ndarray) -> None:
        """Rows of the last scan's table taken as they are (a rescan's unchanged folder)."""
        if self.base is None:
            self.base, self.kept = base, np.zeros(len(base), dtype=bool)
        self.kept[rows] = True

    @property
    def carried(self) -> int:
        return 0 if self.kept is None else int(np.count_nonzero(self.kept))

    def table(self) -> RecordTable:
        if self.dropped:
            keep = [k for k in range(len(self.paths)) if k not in self.dropped]
            self.paths = [self.paths[k] for k in keep]
            self.formats = [self.formats[k] for k in keep]
            for name in ("size", "mtime", "width", "height"):
                column = getattr(self, name)
                setattr(self, name, array(column.typecode, (column[k] for k in keep)))
        new = RecordTable.build(
            self.paths, self.size, self.mtime, self.width, self.height, self.formats
        )
        if self.base is None:
            return new
        return splice(self.base, np.flatnonzero(self.kept), new)
