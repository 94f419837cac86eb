"""Big folders: the index as columns, lazy headers past the header limit, the scan kept on disk."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sslstudio.core.data import indexstore
from sslstudio.core.data.index import ImageIndex, ImageRecord
from sslstudio.core.data.indexstore import load_index, open_index, store_path
from sslstudio.core.data.scan import scan_folder
from sslstudio.core.data.table import RecordTable


def _folder(root: Path, sizes: dict[str, tuple[int, int]]) -> Path:
    for rel, (w, h) in sizes.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (w, h), (len(rel) * 7 % 255, 40, 90)).save(path)
    return root


@pytest.fixture
def classes_folder(tmp_path) -> Path:
    sizes = {f"{c}/{i:02d}.png": (16 + i, 20 + i) for c in ("b", "a") for i in range(6)}
    return _folder(tmp_path / "imgs", sizes)


def test_table_is_a_sequence_of_the_same_records_and_round_trips(tmp_path):
    records = [
        ImageRecord("z/1.png", 10, 12, "png", "z", 100, 5),
        ImageRecord("a/\udcff odd.jpg", 30, 20, "jpeg", "a", 2000, 7),  # undecodable byte
        ImageRecord("loose.tif", 0, 0, "tiff", None, 9, 1),  # header not read yet
    ]
    table = RecordTable.from_records(records)
    expect = sorted(records, key=lambda r: r.path)
    assert list(table) == expect and table[-1] == expect[-1] and table[0:2] == expect[:2]
    with pytest.raises(IndexError):
        table[3]
    assert table.unread().tolist() == [1]  # "loose.tif" sorts between "a/…" and "z/…"
    table.save(tmp_path / "t")
    back = RecordTable.load(tmp_path / "t")
    assert list(back) == expect and back.fingerprint() == table.fingerprint()
    assert isinstance(back.columns["blob"], np.memmap)  # re-open maps the path bytes
    # the fingerprint is the same whether the index holds a list or a table
    assert ImageIndex("r", images=records).fingerprint() == table.fingerprint()
    changed = [*records[:2], ImageRecord("loose.tif", 0, 0, "tiff", None, 10, 1)]
    assert RecordTable.from_records(changed).fingerprint() != table.fingerprint()


def test_damaged_table_is_refused(tmp_path):
    table = RecordTable.from_records([ImageRecord("a.png", 10, 10, "png", None, 1, 1)])
    table.save(tmp_path / "t")
    (tmp_path / "t" / "width.npy").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="damaged"):
        RecordTable.load(tmp_path / "t")


def test_past_the_header_limit_files_are_sniffed_and_sizes_read_lazily(tmp_path):
    sizes = {f"{i:02d}.png": (16 + i, 30) for i in range(20)}
    root = _folder(tmp_path / "imgs", sizes)
    (root / "notes.png").write_text("not an image")  # caught by magic bytes, not by a header
    (root / "empty.png").write_bytes(b"")
    index = scan_folder(root, verify=False, header_limit=8, workers=2)
    assert len(index.images) == 20
    assert {s.path: s.reason for s in index.skipped} == {
        "notes.png": "not an image",
        "empty.png": "empty file",
    }
    assert index.unread == 20  # past the limit: listed and type-checked, no header read
    known = index.sizes(at_least=15)
    assert len(known) == 15 and index.unread == 5  # a sample read lazily
    for rec in index.images:  # every size read lazily is the real one
        if rec.width:
            assert (rec.width, rec.height) == sizes[rec.path]
    stats = index.stats()
    assert stats.images == 20 and stats.formats == {"PNG": 20}
    assert stats.sizes_unknown == index.unread == 0  # stats read up to 2000: all 20 here
    assert stats.smallest == (16, 30) and stats.largest == (35, 30)


def test_stats_count_classes_and_formats_without_records(classes_folder):
    (classes_folder / "a" / "x.jpg").parent.mkdir(exist_ok=True)
    Image.new("RGB", (40, 10)).save(classes_folder / "a" / "x.jpg")
    index = scan_folder(classes_folder)
    stats = index.stats()
    assert stats.classes == {"a": 7, "b": 6}
    assert stats.formats == {"PNG": 12, "JPEG": 1}
    assert stats.smallest == (16, 20) and stats.largest == (21, 25) and stats.sizes_unknown == 0
    assert stats.total_bytes == sum(r.size_bytes for r in index.images)
    assert index.labels() == [0] * 7 + [1] * 6


def test_open_index_reuses_the_stored_scan_until_the_folder_changes(
    classes_folder, tmp_path, monkeypatch
):
    cache = tmp_path / "cache"
    scans = []
    real_scan = indexstore.scan_folder
    monkeypatch.setattr(
        indexstore, "scan_folder", lambda *a, **k: scans.append(1) or real_scan(*a, **k)
    )
    first = open_index(classes_folder, cache)
    again = open_index(classes_folder, cache)
    assert len(scans) == 1 and list(again.images) == list(first.images)
    assert again.fingerprint() == first.fingerprint() and again.classes == ["a", "b"]

    # a file added in a subfolder changes that folder's mtime: a new scan finds it
    Image.new("RGB", (16, 16)).save(classes_folder / "b" / "new.png")
    third = open_index(classes_folder, cache)
    assert len(scans) == 2 and len(third.images) == 13

    # an image edited in place (same name, new size and time) in a small folder is seen too
    target = classes_folder / "a" / "00.png"
    Image.new("RGB", (64, 64)).save(target)
    os.utime(target, ns=(time.time_ns(), time.time_ns() + 10**9))
    fourth = open_index(classes_folder, cache)
    assert len(scans) == 3 and fourth.images[0].width == 64

    # a request to verify is not satisfied by a header-only scan; rescan ignores the store
    open_index(classes_folder, cache, verify=True)
    open_index(classes_folder, cache, verify=True)
    assert len(scans) == 4
    open_index(classes_folder, cache, rescan=True)
    assert len(scans) == 5


def test_damaged_store_means_a_new_scan(classes_folder, tmp_path):
    cache = tmp_path / "cache"
    open_index(classes_folder, cache)
    where = store_path(classes_folder, cache, None)
    assert load_index(where) is not None
    (where / "index.json").write_text("{not json")
    assert load_index(where) is None
    assert len(open_index(classes_folder, cache).images) == 12
    assert load_index(where) is not None  # stored again


def test_a_store_that_cannot_be_written_costs_nothing(classes_folder, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")  # a file where the cache folder should be: writing fails
    index = open_index(classes_folder, blocker)
    assert len(index.images) == 12


def _big(root: Path, folders: int = 4, per: int = 6) -> Path:
    for f in range(folders):
        for i in range(per):
            path = root / f"c{f}" / f"{i:02d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (16 + i, 16 + f), (f * 40, i * 30, 90)).save(path)
    (root / "c0" / "notes.txt").write_text("a note")
    (root / "c1" / "bad.png").write_text("not a png")
    (root / "c1" / ".DS_Store").write_bytes(b"junk")
    return root


@pytest.mark.parametrize("header_limit", [5, 1000])  # past the header limit, and under it
def test_a_changed_folder_rescans_only_its_changed_subfolders(tmp_path, monkeypatch, header_limit):
    from sslstudio.core.data import scan

    root = _big(tmp_path / "data")
    cache = tmp_path / "cache"
    open_index(root, cache, header_limit=header_limit)
    Image.new("RGB", (30, 30)).save(root / "c2" / "new.png")  # c2 changes; c0, c1, c3 do not
    (root / "c3" / "03.png").unlink()  # and c3
    opened: list[str] = []
    real_sniff = scan._sniff
    monkeypatch.setattr(
        scan, "_sniff", lambda c: (c.known is None and opened.append(c.rel)) or real_sniff(c)
    )
    listed: list[str] = []
    real_scandir = os.scandir
    monkeypatch.setattr(
        scan.os, "scandir", lambda p: listed.append(os.path.relpath(p, root)) or real_scandir(p)
    )
    again = open_index(root, cache, header_limit=header_limit)
    monkeypatch.setattr(scan.os, "scandir", real_scandir)
    # only the changed folders are listed: the root's time did not change either
    assert sorted(listed) == ["c2", "c3"]
    # the changed folders' files; in a small folder also the file set aside (its size and
    # time are not kept to compare); the document and the system file are counted as before
    again_judged = ["c1/bad.png"] if header_limit == 1000 else []
    assert sorted(opened) == sorted(
        [
            *(f"c2/{i:02d}.png" for i in range(6)),
            "c2/new.png",
            *(f"c3/{i:02d}.png" for i in (0, 1, 2, 4, 5)),
            *again_judged,
        ]
    )
    fresh = scan_folder(root, verify=False, header_limit=header_limit)
    assert [r.path for r in again.images] == [r.path for r in fresh.images]
    assert [(r.size_bytes, r.mtime_ns) for r in again.images] == [
        (r.size_bytes, r.mtime_ns) for r in fresh.images
    ]
    assert again.skipped == fresh.skipped and (again.ignored, again.other) == (
        fresh.ignored,
        fresh.other,
    ) == (1, 1)
    if header_limit == 1000:  # a small folder: every size known, reused or read
        assert again.unread == 0 and again.stats().largest == (30, 30)
    assert again.fingerprint() == fresh.fingerprint()


def test_an_image_edited_in_place_is_read_again_in_a_small_folder(tmp_path):
    root = _big(tmp_path / "data")
    cache = tmp_path / "cache"
    open_index(root, cache)
    target = root / "c0" / "00.png"
    Image.new("RGB", (48, 40)).save(target)  # same name: the folder's time does not change
    os.utime(target, ns=(time.time_ns(), time.time_ns() + 10**9))
    again = open_index(root, cache)
    rec = next(r for r in again.images if r.path == "c0/00.png")
    assert (rec.width, rec.height) == (48, 40) and rec.size_bytes == target.stat().st_size


def test_a_new_subfolder_and_a_removed_one_are_found_listing_only_their_parents(
    tmp_path, monkeypatch
):
    import shutil

    from sslstudio.core.data import scan

    root = _big(tmp_path / "data")
    cache = tmp_path / "cache"
    open_index(root, cache)
    (root / "c0" / "deep").mkdir()  # c0 changes (a new entry); c0/deep is new
    Image.new("RGB", (20, 20)).save(root / "c0" / "deep" / "x.png")
    shutil.rmtree(root / "c3")  # the root changes
    listed: list[str] = []
    real_scandir = os.scandir
    monkeypatch.setattr(
        scan.os, "scandir", lambda p: listed.append(os.path.relpath(p, root)) or real_scandir(p)
    )
    again = open_index(root, cache)
    monkeypatch.setattr(scan.os, "scandir", real_scandir)
    assert sorted(listed) == [".", "c0", "c0/deep"]  # c1 and c2 are taken as they were
    fresh = scan_folder(root, verify=False)
    assert [r.path for r in again.images] == [r.path for r in fresh.images]
    assert "c0/deep/x.png" in [r.path for r in again.images]
    assert not any(r.path.startswith("c3/") for r in again.images)
    assert again.skipped == fresh.skipped and (again.ignored, again.other) == (1, 1)
    assert again.folders == fresh.folders and again.fingerprint() == fresh.fingerprint()
