"""A rescan's table spliced from the last one equals the table built from scratch."""

from __future__ import annotations

import os
import random
import shutil

import numpy as np
import pytest
from PIL import Image

from sslstudio.core.data.indexstore import open_index
from sslstudio.core.data.scan import scan_folder
from sslstudio.core.data.splice import FolderRows, splice
from sslstudio.core.data.table import RecordTable

# folders whose names sort around '/' ('-' and '.' before it, '0' and 'é' after), a root
# file, a slide's tiles, an undecodable name kept by surrogateescape
PATHS = [
    "top.png",
    "a/x.png",
    "a/b/y.png",
    "a/b/c/z.png",
    "a/b-2/w.png",
    "a/b.png",
    "a/b0/v.png",
    "a/bé/u.png",
    "a.b/t.png",
    "a0/s.png",
    "é/r.png",
    "s/slide.svs#0:0:0:224",
    "s/slide.svs#0:224:0:224",
    "s/sub/q.png",
    "s/\udcff.png",
    "z/p.png",
]


def _table(paths: list[str], seed: int = 0) -> RecordTable:
    rng = random.Random(seed)
    return RecordTable.build(
        paths,
        [rng.randrange(1, 10**6) for _ in paths],
        [rng.randrange(1, 10**12) for _ in paths],
        [rng.randrange(0, 500) for _ in paths],
        [rng.randrange(0, 500) for _ in paths],
        ["tile" if "#" in p else rng.choice(["png", "jpeg", "tiff"]) for p in paths],
    )


def _columns(table: RecordTable) -> dict[str, list]:
    return {name: np.asarray(col).tolist() for name, col in table.columns.items()}


@pytest.mark.parametrize(
    "folder, files",
    [
        ("", ["top.png"]),
        ("a", ["a/b.png", "a/x.png"]),
        ("a/b", ["a/b/y.png"]),
        ("a/b-2", ["a/b-2/w.png"]),
        ("s", ["s/slide.svs#0:0:0:224", "s/slide.svs#0:224:0:224", "s/\udcff.png"]),
        ("é", ["é/r.png"]),
        ("missing", []),
    ],
)
def test_a_folders_rows_are_its_own_files_not_its_subfolders(folder, files):
    table = _table(PATHS)
    rows = FolderRows(table).of(folder)
    assert [table.path(int(k)) for k in rows] == sorted(files)


@pytest.mark.parametrize("seed", range(6))
def test_splicing_kept_rows_and_new_ones_equals_building_the_union(seed, monkeypatch):
    rng = random.Random(seed)
    if seed % 2:  # half the draws place new rows by decoding the kept paths once
        monkeypatch.setattr("sslstudio.core.data.splice._DECODE_ALL", 0)
    new_paths = ["a/b/new.png", "new-class/n.png", "0first.png", "a/b/c/zz.png", "~last/l.png"]
    union = _table(PATHS + new_paths, seed)
    rows = {p: k for k, p in enumerate(union.paths())}
    kept = sorted(rng.sample(PATHS, rng.randrange(0, len(PATHS) + 1)))
    added = sorted(rng.sample(new_paths, rng.randrange(0, len(new_paths) + 1)))
    base = RecordTable(
        {n: np.asarray(c) for n, c in _subset(union, [rows[p] for p in PATHS]).columns.items()},
        _subset(union, [rows[p] for p in PATHS]).label_names,
    )
    keep = np.array(sorted(base.paths().index(p) for p in kept), dtype=np.int64)
    new = _subset(union, [rows[p] for p in added])
    spliced = splice(base, keep, new)
    expected = _subset(union, sorted(rows[p] for p in kept + added))
    assert spliced.paths() == expected.paths()
    assert spliced.label_names == expected.label_names
    assert _columns(spliced) == _columns(expected)
    assert spliced.fingerprint() == expected.fingerprint()


def _subset(table: RecordTable, rows: list[int]) -> RecordTable:
    """The table built from scratch from some of ``table``'s rows."""
    recs = [table[k] for k in rows]
    return RecordTable.from_records(recs)


def _tree(root, paths) -> None:
    for p in paths:
        f = root / p
        f.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (12, 10), (len(p) * 7 % 255, 40, 90)).save(f, format="PNG")


def test_a_big_rescan_after_classes_come_and_go_equals_a_fresh_scan(tmp_path, monkeypatch):
    """Past the header limit (the spliced path): a class removed, one added, files added in a
    nested folder and at the top, one deleted; paths, labels and every column as a fresh scan."""
    root, cache = tmp_path / "data", tmp_path / "cache"
    names = [p for p in PATHS if "#" not in p and "\udcff" not in p]
    _tree(root, names + [f"k{i}/{j:02d}.png" for i in range(3) for j in range(5)])
    first = open_index(root, cache, header_limit=5)
    assert len(first.images) == len(names) + 15
    shutil.rmtree(root / "k0")  # a class goes: every label code after it shifts
    _tree(root, ["aa-new/1.png", "a/b/c/d/deep.png", "top2.png", "k1/zz.png"])
    os.unlink(root / "k2" / "03.png")
    import sslstudio.core.data.found as found

    spliced: list[int] = []
    real = found.splice
    monkeypatch.setattr(found, "splice", lambda b, k, n: spliced.append(len(k)) or real(b, k, n))
    again = open_index(root, cache, header_limit=5)
    fresh = scan_folder(root, verify=False, header_limit=5)
    assert spliced and spliced[0] > 0  # unchanged folders' rows were carried, not rebuilt
    assert again.images.paths() == fresh.images.paths()
    assert again.images.label_names == fresh.images.label_names
    assert _columns(again.images) == _columns(fresh.images)
    assert [r.label for r in again.images] == [r.label for r in fresh.images]
    assert again.fingerprint() == fresh.fingerprint()
    assert again.skipped == fresh.skipped and again.folders == fresh.folders
