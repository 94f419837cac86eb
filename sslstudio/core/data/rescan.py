"""Scanning a folder again after a change: what did not change is taken from the last scan.

A folder whose modification time is the one recorded last time has the same entries, so its
files need not be opened again: their facts (size, time, format, and size in pixels when it
was read), why they were set aside, or their tiles (a slide) come from the previous index. Only
the files of changed folders are type-checked again. An unchanged folder is not even listed:
its files, subfolders and counts of ignored files are the last scan's (``Previous``), so a
changed million-image folder costs a stat per folder and the listings of the changed ones, and
its table is spliced from the last one (:mod:`.splice`): no unchanged path is decoded again.
In a previous index of at most ``HEADER_LIMIT`` images every
reused file is also checked against its size and time, so an image edited in place is read
again; in a bigger one an edited image is caught when it is decoded (as at re-open).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace

from sslstudio.core.data.found import Candidate, Columns
from sslstudio.core.data.index import ImageIndex, SkippedFile
from sslstudio.core.data.splice import FolderRows
from sslstudio.core.data.table import FORMATS
from sslstudio.imaging import slides


class Previous:
    """The last scan, asked folder by folder by the walk (``scan._walk``)."""

    def __init__(self, index: ImageIndex, into: Columns | None = None) -> None:
        """``into``: where ``carry`` files an unchanged folder's images (a big index, whose files
        are not checked one by one); None: the walk yields them as candidates."""
        self.index, self.into = index, into
        self.rows = FolderRows(index.table)
        self._known: _Known | None = None
        self._children: dict[str, list[str]] = {}
        for rel in sorted(index.folders):
            if rel:
                self._children.setdefault(rel.rpartition("/")[0], []).append(rel)
        self.skipped: dict[str, dict[str, SkippedFile]] = {}
        for s in index.skipped:
            self.skipped.setdefault(s.path.rpartition("/")[0], {})[s.path] = s

    @property
    def known(self) -> _Known:
        """Each file's verdict, for a small index whose files are checked one by one."""
        if self._known is None:
            self._known = _Known(self)
        return self._known

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
        last scan had them: its row numbers in the last table, no path decoded."""
        self.into.keep(self.index.table, self.rows.of(folder))
        skipped = self.skipped.get(folder, {})
        index.skipped.extend(s for p, s in skipped.items() if p not in self.index.folders)


def reuse_unchanged(
    candidates: Iterator[Candidate], index: ImageIndex, previous: Previous, check_files: bool
) -> Iterator[Candidate]:
    """The walk's candidates, those in unchanged folders carrying their previous verdict."""
    stamps = previous.index.folders
    for c in candidates:
        folder = c.rel.rpartition("/")[0]
        stamp = stamps.get(folder)
        if stamp is None or index.folders.get(folder) != stamp:
            yield c  # a new or changed folder: judged afresh
            continue
        facts = previous.known.get(folder, c.rel)  # built on first use: a big index never needs it
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

    def __init__(self, previous: Previous) -> None:
        self.previous, self.table = previous, previous.index.table
        self.paths = self.table.paths()
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
        for k in self.previous.rows.of(folder).tolist():
            path = self.paths[k]
            size, mtime = int(c["size_bytes"][k]), int(c["mtime_ns"][k])
            tile = slides.parse_address(path)
            if tile is not None:  # a slide: its tiles, gathered under the slide's path
                facts.setdefault(tile.slide, (size, mtime, []))[2].append(tile)
            else:
                fmt = FORMATS[int(c["fmt"][k])]
                facts[path] = (size, mtime, (int(c["width"][k]), int(c["height"][k]), fmt))
        for path, s in self.previous.skipped.get(folder, {}).items():
            facts.setdefault(
                path, (-1, -1, s)
            )  # size unknown: a skipped file is judged again if edited
        return facts
