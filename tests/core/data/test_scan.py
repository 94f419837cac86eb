"""Folder scans: what is kept, what is skipped and why, what is ignored (catalogue 1-15)."""

from __future__ import annotations

import builtins
import os
import threading
import time
from pathlib import Path

import pytest

from sslstudio.core.data.scan import (
    ImageIndex,
    ImageRecord,
    ScanCancelled,
    SkippedFile,
    require_usable,
    scan_folder,
)
from sslstudio.errors import NoUsableImagesError
from sslstudio.imaging import decode as imaging
from tests import image_factory as f


def labelled_folder(root: Path, per_class: int = 3) -> Path:
    for label, colour in (("cats", f.RED), ("dogs", f.BLUE)):
        for i in range(per_class):
            f.write_image(root / label, f"{i}.png", colour)
    return root


def test_torture_folder_every_file_lands_where_expected(tmp_path):
    expected = f.build_torture_folder(tmp_path)
    index = scan_folder(tmp_path)
    kept = {r.path for r in index.images}
    skipped = {s.path: s for s in index.skipped}
    for rel, category in expected.items():
        if category is None:
            assert rel in kept, rel
        else:
            assert rel in skipped, rel
            assert skipped[rel].category == category, (rel, skipped[rel])
    assert kept | set(skipped) == set(expected)
    assert index.ignored == len(f.JUNK_NAMES)
    assert not any(Path(p).name in f.JUNK_NAMES for p in kept | set(skipped))
    assert index.classes == []  # root files have no label
    text = index.summary()
    assert text.startswith(f"{len(kept)} images in {tmp_path}; {len(skipped)} skipped: ")
    assert "2 truncated" in text and f"{len(f.JUNK_NAMES)} system files ignored" in text


def test_reasons_and_error_classes_are_recorded(tmp_path):
    f.write_truncated_jpeg(tmp_path)
    f.write_text_as_png(tmp_path)
    f.write_bomb_png(tmp_path)
    index = scan_folder(tmp_path)
    by_path = {s.path: s for s in index.skipped}
    assert by_path["truncated.jpg"].reason.startswith("truncated (")
    assert by_path["truncated.jpg"].error == "OSError"
    assert by_path["notes.png"] == SkippedFile("notes.png", "not an image", "")
    assert by_path["bomb.png"].reason == "too large (20000x20000 px)"
    assert index.skipped_counts() == {"not an image": 1, "too large": 1, "truncated": 1}


def test_labels_come_from_first_level_subfolders(tmp_path):
    labelled_folder(tmp_path)
    f.write_image(tmp_path / "dogs" / "puppies", "deep.png")
    f.write_os_junk(tmp_path / "cats")
    index = scan_folder(tmp_path)
    assert index.classes == ["cats", "dogs"]
    assert [r.label for r in index.images] == ["cats"] * 3 + ["dogs"] * 4
    assert index.labels() == [0] * 3 + [1] * 4
    assert "dogs/puppies/deep.png" in [r.path for r in index.images]
    assert index.summary() == f"7 images (2 classes) in {tmp_path}; 4 system files ignored"


def test_no_classes_with_a_single_subfolder_or_loose_files(tmp_path):
    f.write_image(tmp_path / "only", "a.png")
    f.write_image(tmp_path / "only", "b.png")
    assert scan_folder(tmp_path).classes == []
    assert scan_folder(tmp_path).labels() is None
    labelled_folder(tmp_path / "two")
    f.write_image(tmp_path / "two", "loose.png")
    assert scan_folder(tmp_path / "two").classes == []


def test_records_are_sorted_and_carry_file_facts(tmp_path):
    for name in ("b.png", "a.png", "c d.png", "A.png"):
        f.write_image(tmp_path, name, size=(40, 20))
    f.write_png_as_jpg(tmp_path, "z.jpg")
    index = scan_folder(tmp_path)
    paths = [r.path for r in index.images]
    assert paths == sorted(paths)
    rec = index.images[0]
    st = os.stat(tmp_path / rec.path)
    assert (rec.width, rec.height, rec.format, rec.label) == (40, 20, "png", None)
    assert (rec.size_bytes, rec.mtime_ns) == (st.st_size, st.st_mtime_ns)
    assert index.images[-1] == ImageRecord(
        "z.jpg", 32, 32, "png", None, os.stat(tmp_path / "z.jpg").st_size, index.images[-1].mtime_ns
    )
    assert index.paths() == [tmp_path / p for p in paths]


def test_verify_false_reads_headers_only(tmp_path):
    f.write_truncated_jpeg(tmp_path)
    f.write_tiny(tmp_path)
    quick = scan_folder(tmp_path, verify=False)
    assert [r.path for r in quick.images] == ["truncated.jpg"]  # header is intact
    assert [s.category for s in quick.skipped] == ["too small"]
    full = scan_folder(tmp_path, verify=True)
    assert full.images == [] and full.skipped_counts() == {"too small": 1, "truncated": 1}


def test_channels_are_passed_to_the_decoder(tmp_path):
    f.write_page_stack_tiff(tmp_path)
    assert scan_folder(tmp_path).skipped[0].category == "unsupported TIFF"
    index = scan_folder(tmp_path, channels=(0, 1, 2))
    assert [r.path for r in index.images] == ["stack.tif"]


# -- 11: links and unreadable files -----------------------------------------------------------


def test_broken_symlink_and_loops_are_reported_and_the_scan_ends(tmp_path):
    f.write_image(tmp_path, "real.png")
    f.write_broken_symlink(tmp_path)
    f.write_self_symlink(tmp_path)
    sub = tmp_path / "sub"
    f.write_image(sub, "x.png")
    f.write_symlink_loop(sub)
    os.symlink(tmp_path, sub / "to_root", target_is_directory=True)
    index = scan_folder(tmp_path)
    assert sorted(r.path for r in index.images) == ["real.png", "sub/x.png"]
    reasons = {s.path: s.reason for s in index.skipped}
    assert reasons == {
        "broken_link.jpg": "broken symlink",
        "self_link.jpg": "symlink loop",
        "sub/loop": "symlink loop",
        "sub/to_root": "symlink loop",
    }


def test_symlinks_to_files_and_outside_folders_are_followed(tmp_path):
    outside = tmp_path / "outside"
    f.write_image(outside, "o.png")
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(outside / "o.png", root / "link.png")
    os.symlink(outside, root / "linked_dir", target_is_directory=True)
    os.symlink(outside, root / "second_link", target_is_directory=True)
    index = scan_folder(root)
    assert [r.path for r in index.images] == ["link.png", "linked_dir/o.png"]
    assert [s.category for s in index.skipped] == ["duplicate folder"]


def test_unreadable_file_is_skipped_with_permission_error(tmp_path, monkeypatch):
    f.write_image(tmp_path, "ok.png")
    locked = f.write_image(tmp_path, "locked.png")
    real_open = builtins.open

    def deny(file, *args, **kwargs):
        if os.fspath(file) == os.fspath(locked):
            raise PermissionError(13, "Permission denied", os.fspath(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", deny)
    index = scan_folder(tmp_path)
    assert [r.path for r in index.images] == ["ok.png"]
    assert index.skipped == [
        SkippedFile("locked.png", "unreadable (PermissionError)", "PermissionError")
    ]


def test_unreadable_subfolder_is_reported(tmp_path, monkeypatch):
    labelled_folder(tmp_path)
    real_scandir = os.scandir

    def deny(path="."):
        if os.fspath(path).endswith("dogs"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", deny)
    index = scan_folder(tmp_path)
    assert len(index.images) == 3
    assert index.skipped == [
        SkippedFile("dogs", "unreadable folder (PermissionError)", "PermissionError")
    ]


def test_file_deleted_after_scan_gives_a_reason(tmp_path):
    f.write_image(tmp_path, "a.png")
    index = scan_folder(tmp_path)
    index.paths()[0].unlink()
    with pytest.raises(imaging.DecodeError, match=r"unreadable \(FileNotFoundError\)"):
        imaging.decode(index.paths()[0])


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_fifo_does_not_hang_the_scan(tmp_path):
    os.mkfifo(tmp_path / "pipe.png")
    f.write_image(tmp_path, "a.png")
    index = scan_folder(tmp_path)
    assert index.skipped == [SkippedFile("pipe.png", "not an image (special file)")]


# -- 12: names --------------------------------------------------------------------------------


def test_odd_names_round_trip_through_scan_and_json(tmp_path):
    written = f.write_odd_names(tmp_path / "klasse ü#1")
    f.write_image(tmp_path / "other", "x.png")
    index = scan_folder(tmp_path)
    assert {p.name for p in index.paths()} >= {p.name for p in written}
    for path in index.paths():
        assert path.exists()
        assert imaging.decode(path).shape[2] == 3
    again = ImageIndex.from_json(index.to_json())
    assert again == index
    assert again.fingerprint() == index.fingerprint()
    assert "klasse ü#1" in again.classes


def test_from_json_refuses_other_documents():
    with pytest.raises(ValueError):
        ImageIndex.from_json('{"version": 99}')
    with pytest.raises(ValueError):
        ImageIndex.from_json('{"version": 1, "root": "/x"}')


# -- fingerprint ------------------------------------------------------------------------------


def test_fingerprint_tracks_folder_changes(tmp_path):
    labelled_folder(tmp_path)
    first = scan_folder(tmp_path).fingerprint()
    assert scan_folder(tmp_path).fingerprint() == first
    f.write_image(tmp_path / "cats", "new.png")
    added = scan_folder(tmp_path).fingerprint()
    assert added != first
    path = tmp_path / "cats" / "new.png"
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert scan_folder(tmp_path).fingerprint() != added
    path.unlink()
    assert scan_folder(tmp_path).fingerprint() == first
    f.write_text_as_png(tmp_path)  # a skipped file is not data
    assert scan_folder(tmp_path).fingerprint() == first


# -- 14: nothing usable -----------------------------------------------------------------------


def test_missing_root_or_file_root_is_a_clear_error(tmp_path):
    with pytest.raises(NoUsableImagesError, match="does not exist"):
        scan_folder(tmp_path / "nope")
    with pytest.raises(NoUsableImagesError, match="is not a folder"):
        scan_folder(f.write_image(tmp_path, "a.png"))


def test_require_usable_names_what_went_wrong(tmp_path):
    for i in range(3):
        f.write_truncated_jpeg(tmp_path, f"t{i}.jpg")
    for i in range(2):
        f.write_text_as_png(tmp_path, f"n{i}.png")
    f.write_os_junk(tmp_path)
    index = scan_folder(tmp_path)
    with pytest.raises(NoUsableImagesError) as info:
        require_usable(index)
    assert str(info.value).startswith(f"no usable images in {tmp_path}: 3 truncated, 2 not images.")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(NoUsableImagesError, match="holds no image files"):
        require_usable(scan_folder(empty))
    require_usable(scan_folder(labelled_folder(tmp_path / "good")))


# -- 15: progress and cancel ------------------------------------------------------------------


def many_files(root: Path, n: int) -> Path:
    for i in range(n):
        f.write_image(root / f"c{i % 2}", f"{i:04d}.png", size=(8, 8))
    return root


def test_progress_is_reported_and_throttled(tmp_path):
    many_files(tmp_path, 300)
    calls: list[tuple[int, int | None]] = []
    start = time.monotonic()
    index = scan_folder(tmp_path, progress=lambda done, total: calls.append((done, total)))
    elapsed = time.monotonic() - start
    assert len(index.images) == 300
    assert calls[-1] == (300, 300)
    for phase in (None, 300):  # files listed while walking, then headers read of 300
        done = [d for d, t in calls if t == phase]
        assert done == sorted(done)
    assert len(calls) <= elapsed * 30 + 3


def test_cancel_before_start_raises(tmp_path):
    many_files(tmp_path, 4)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(ScanCancelled):
        scan_folder(tmp_path, cancel=cancel)


def test_cancel_during_scan_stops_promptly(tmp_path):
    many_files(tmp_path, 400)
    cancel = threading.Event()
    seen: list[int] = []

    def progress(done: int, total: int | None) -> None:
        seen.append(done)
        cancel.set()

    start = time.monotonic()
    with pytest.raises(ScanCancelled):
        scan_folder(tmp_path, cancel=cancel, progress=progress)
    assert time.monotonic() - start < 5
    assert seen and seen[-1] < 400


def test_threads_do_not_change_the_result(tmp_path):
    f.build_torture_folder(tmp_path, links=False)
    one = scan_folder(tmp_path, workers=1)
    many = scan_folder(tmp_path, workers=8)
    assert one == many


def test_notes_beside_images_are_not_failures_but_fake_images_are(tmp_path):
    from PIL import Image

    Image.new("RGB", (16, 16), (200, 10, 10)).save(tmp_path / "a.png")
    (tmp_path / "README.md").write_text("# my slides")
    (tmp_path / "labels.csv").write_text("a.png,tumour")
    (tmp_path / "fake.png").write_text("not a png")
    index = scan_folder(tmp_path)
    assert [r.path for r in index.images] == ["a.png"]
    assert [s.path for s in index.skipped] == ["fake.png"]
    assert index.other == 2
    assert "2 non-image files ignored" in index.summary()
    assert ImageIndex.from_json(index.to_json()).other == 2
