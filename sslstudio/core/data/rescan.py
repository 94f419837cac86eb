"""Scanning a folder again after a change: what did not change is taken from the last scan.

A folder whose modification time is the one recorded last time has the same entries, so its
files need not be opened again: their facts (size, time, format, and size in pixels when it
was read), why they were set aside, or their tiles (a slide) come from the previous index. Only
the files of changed folders are type-checked again. An unchanged folder is not even listed:
its files, subfolders and counts of ignored files are the last scan's (``Previous``), so a
changed million-image folder costs a stat per folder and the listings of the changed ones.
In a previous index of at most ``HEADER_LIMIT`` images every
reused file is also checked against its size and time, so an image edited in place is read
again; in a bigger one an edited image is caught when it is decoded (as at re-open).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace

import numpy as np

from sslstudio.core.data.found import Candidate, Columns
from sslstudio.core.data.index import ImageIndex, SkippedFile
from sslstudio.core.data.table import FORMATS
from sslstudio.imaging import slides


class Previous:
    """The last scan, asked folder by folder by the walk (``scan._walk``)."""

    def __init__(self, index: ImageIndex, into: Columns | None = None) -> None:
        """``into``: where ``carry`` files an unchanged folder's images (a big index, whose files
        are not checked one by one); None: the walk yields them as candidates."""
        self.index, self.known, self.into = index, _Known(index), into
        self._children: dict[str, list[str]] = {}
        for rel in sorted(index.folders):
            if rel:
                self._children.setdefault(rel.rpartition("/")[0], []).append(rel)

    def unchanged(self, folder: str, mtime_ns: int) -> bool:
        return self.index.folders.get(folder) == mtime_ns

    def entries(self, folder: str) -> list[str]:
        """The files (and files set aside) the last scan found in ``folder``, sorted; a set-aside
        folder that was walked is left to its own visit."""
        return sorted(p for p in self.known.facts(folder) if p not in self.index.folders)

    def subfolders(self, folder: str) -> list[str]:
        return self._children.get(folder, [])

    def counts(self, folder: str) -> tuple[int, int]:
        return self.index.folder_counts.get(folder, (0, 0))

    def carry(self, folder: str, index: ImageIndex) -> None:
        """``folder``'s images into ``into`` and its files set aside into ``index``, as the
        last scan had them: a few array operations per folder, no candidate per file."""
        rows = self.known.rows.get(folder)
        if rows is not None and len(rows):
            c = self.known.table.columns
            names = {
                "size": "size_bytes",
                "mtime": "mtime_ns",
                "width": "width",
                "height": "height",
            }
            columns = {k: np.asarray(c[v])[rows].tolist() for k, v in names.items()}
            fmts = [FORMATS[f] for f in np.asarray(c["fmt"])[rows].tolist()]
            self.into.extend([self.known.paths[k] for k in rows.tolist()], columns, fmts)
        skipped = self.known.skipped.get(folder, {})
        index.skipped.extend(s for p, s in skipped.items() if p not in self.index.folders)


def reuse_unchanged(
    candidates: Iterator[Candidate], index: ImageIndex, previous: Previous, check_files: bool
) -> Iterator[Candidate]:
    """The walk's candidates, those in unchanged folders carrying their previous verdict."""
    known, previous = previous.known, previous.index
    for c in candidates:
        folder = c.rel.rpartition("/")[0]
        stamp = previous.folders.get(folder)
        if stamp is None or index.folders.get(folder) != stamp:
            yield c  # a new or changed folder: judged afresh
            continue
        facts = known.get(folder, c.rel)
        if facts is None:
            yield c  # a document, or a file the last scan never saw: cheap to judge again
            continue
        size, mtime, verdict = facts
        if check_files:
            try:
                st = os.stat(c.path)
            except OSError:
                yield c
                continue
            if (st.st_size, st.st_mtime_ns) != (size, mtime):
                yield c  # edited in place
                continue
        yield replace(c, size=size, mtime_ns=mtime, known=verdict)


class _Known:
    """The previous index's verdicts, one folder at a time (built when the walk reaches it)."""

    def __init__(self, previous: ImageIndex) -> None:
        t = previous.table
        self.table, self.paths = t, _paths(t)
        parents = np.array([_folder_of(p) for p in self.paths], dtype=object)
        self.rows: dict[str, np.ndarray] = {}
        if len(parents):  # a previous scan that found no images (an empty folder then filled)
            order = np.argsort(parents, kind="stable")
            ends = np.flatnonzero(np.r_[True, parents[order][1:] != parents[order][:-1], True])
            self.rows = {parents[order[a]]: order[a:b] for a, b in zip(ends[:-1], ends[1:])}
        self.skipped: dict[str, dict[str, SkippedFile]] = {}
        for s in previous.skipped:
            self.skipped.setdefault(s.path.rpartition("/")[0], {})[s.path] = s
        self._folder, self._facts = None, {}

    def get(self, folder: str, rel: str):
        return self.facts(folder).get(rel)

    def facts(self, folder: str) -> dict[str, tuple]:
        if folder != self._folder:
            self._folder, self._facts = folder, self._build(folder)
        return self._facts

    def _build(self, folder: str) -> dict[str, tuple]:
        c = self.table.columns
        facts: dict[str, tuple] = {}
        for k in self.rows.get(folder, ()):
            path = self.paths[k]
            size, mtime = int(c["size_bytes"][k]), int(c["mtime_ns"][k])
            tile = slides.parse_address(path)
            if tile is not None:  # a slide: its tiles, gathered under the slide's path
                facts.setdefault(tile.slide, (size, mtime, []))[2].append(tile)
            else:
                fmt = FORMATS[int(c["fmt"][k])]
                facts[path] = (size, mtime, (int(c["width"][k]), int(c["height"][k]), fmt))
        for path, s in self.skipped.get(folder, {}).items():
            facts.setdefault(
                path, (-1, -1, s)
            )  # size unknown: a skipped file is judged again if edited
        return facts


def _paths(table) -> list[str]:
    """Every row's path, the stored bytes read once (``table.path`` per row costs ~20x more)."""
    blob = np.asarray(table.columns["blob"]).tobytes()
    ends = np.asarray(table.columns["offsets"]).tolist()
    return [blob[a:b].decode("utf-8", "surrogateescape") for a, b in zip(ends, ends[1:])]


def _folder_of(path: str) -> str:
    """The folder of a file, or of a tile's slide."""
    tile = slides.parse_address(path)
    return (tile.slide if tile is not None else path).rpartition("/")[0]
