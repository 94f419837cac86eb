"""A rescan's table spliced from the last one: its kept rows as they are, the few new ones placed.

After one file is added to a million-image folder, the rows of every unchanged folder are the
last table's, already sorted by path and encoded. Decoding, sorting and encoding a million
paths again cost ~2 s of a re-open; here no kept path is decoded. A row's folder is found from
the stored bytes (the length of the path up to its last ``/``, for every row at once), a
folder's rows by binary search (the rows under ``a/b/`` are contiguous in path order), the new
rows' places by binary search, and the columns are copied in contiguous runs.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

import numpy as np

from sslstudio.core.data.table import RecordTable

_SLASH = ord("/")
_DECODE_ALL = 2_000  # more new rows than this: decode the kept paths once instead of bisecting


class FolderRows:
    """Which rows of a sorted table are the files (or a slide's tiles) of one folder."""

    def __init__(self, table: RecordTable) -> None:
        self.table = table
        self.paths = _Paths(table, None)
        blob = np.asarray(table.columns["blob"])
        offsets = np.asarray(table.columns["offsets"], dtype=np.int64)
        slashes = np.flatnonzero(blob == _SLASH)  # UTF-8: '/' is never inside another character
        last = np.searchsorted(slashes, offsets[1:]) - 1  # each row's last '/' before its end
        at = slashes[np.maximum(last, 0)] if len(slashes) else np.zeros(len(last), np.int64)
        inside = (last >= 0) & (at >= offsets[:-1])
        # bytes of each row's folder ("a/b/x.png": 3; a tile "a/s.svs#0:1:2:3": 1; "x.png": 0)
        self.folder_bytes = np.where(inside, at - offsets[:-1], 0)

    def of(self, folder: str) -> np.ndarray:
        """Row numbers (ascending) of ``folder``'s own files, not its subfolders' ("": the top)."""
        if folder:
            lo = bisect_left(self.paths, folder + "/")
            hi = bisect_left(self.paths, folder + "0", lo)  # '0' follows '/': past the subtree
        else:
            lo, hi = 0, len(self.paths)
        width = len(folder.encode("utf-8", "surrogateescape"))
        return lo + np.flatnonzero(self.folder_bytes[lo:hi] == width)


def splice(base: RecordTable, keep: np.ndarray, new: RecordTable) -> RecordTable:
    """``base``'s rows ``keep`` (ascending) and every row of ``new``, in path order.

    No path of ``new`` may be one of the kept paths (a path belongs to one folder, and a
    folder's rows are either kept or listed again)."""
    keep = np.asarray(keep, dtype=np.int64)
    kept_paths: Sequence[str] = _Paths(base, keep)
    if len(new) > _DECODE_ALL:
        kept_paths = _decoded(base, keep)
    pos = np.zeros(len(new), dtype=np.int64)
    lo = 0
    for i, path in enumerate(new.paths()):
        pos[i] = lo = bisect_left(kept_paths, path, lo)  # new rows are sorted: places ascend
    bc, nc = base.columns, new.columns
    offsets = np.asarray(bc["offsets"], dtype=np.int64)
    lengths = np.insert(offsets[keep + 1] - offsets[keep], pos, np.diff(nc["offsets"]))
    columns = {
        "blob": _blob(np.asarray(bc["blob"]), offsets, keep, np.asarray(nc["blob"]), nc, pos),
        "offsets": np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
    }
    for name in ("size_bytes", "mtime_ns", "width", "height", "fmt"):
        columns[name] = np.insert(np.asarray(bc[name])[keep], pos, np.asarray(nc[name]))
    old = np.asarray(bc["label"])[keep]
    used = {base.label_names[c] for c in np.unique(old[old >= 0]).tolist()}
    names = sorted(used | set(new.label_names))
    columns["label"] = np.insert(
        _recode(old, base.label_names, names), pos, _recode(nc["label"], new.label_names, names)
    ).astype(np.int32)
    return RecordTable(columns, names)


def _blob(blob, offsets, keep, new_blob, nc, pos) -> np.ndarray:
    """The spliced path bytes: runs of consecutive kept rows, the new rows between them."""
    new_offsets = np.asarray(nc["offsets"], dtype=np.int64)
    runs = np.flatnonzero(np.diff(keep) != 1) + 1  # where a run of consecutive base rows starts
    cuts = np.unique(np.concatenate([[0, len(keep)], runs, pos]))
    pieces = []
    for a, b in zip(cuts.tolist(), [*cuts[1:].tolist(), None]):
        first, last = np.searchsorted(pos, a, "left"), np.searchsorted(pos, a, "right")
        if last > first:  # the new rows placed before kept row a
            pieces.append(new_blob[new_offsets[first] : new_offsets[last]])
        if b is not None and b > a:
            pieces.append(blob[offsets[keep[a]] : offsets[keep[b - 1] + 1]])
    return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.uint8)


def _recode(codes, names: list[str], into: list[str]) -> np.ndarray:
    """Label codes over ``names`` as codes over ``into`` (-1 stays -1)."""
    where = {name: k for k, name in enumerate(into)}
    table = np.array([where.get(n, -1) for n in names] + [-1], dtype=np.int32)
    return table[np.asarray(codes, dtype=np.int64)]  # -1 picks the last entry: -1


def _decoded(table: RecordTable, rows: np.ndarray) -> list[str]:
    paths = table.paths()
    return [paths[k] for k in rows.tolist()]


class _Paths(Sequence[str]):
    """The paths of some rows (all: None), decoded only when asked: what bisect needs."""

    def __init__(self, table: RecordTable, rows: np.ndarray | None) -> None:
        self.rows, self.n = rows, len(table) if rows is None else len(rows)
        self.blob = np.asarray(table.columns["blob"])  # a plain view: memmap indexing is slow
        self.offsets = np.asarray(table.columns["offsets"])

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i):  # type: ignore[override]
        k = int(i if self.rows is None else self.rows[i])
        lo, hi = int(self.offsets[k]), int(self.offsets[k + 1])
        return self.blob[lo:hi].tobytes().decode("utf-8", "surrogateescape")
