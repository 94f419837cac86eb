"""RELIABILITY.md items 1-15 (images), end to end over the torture folder of ``torture.py``.

The decoder's and the scan's unit tests (tests/core/data/test_imaging.py, test_scan.py,
test_cache.py) check each catalogue file on its own; the rows of the report that lists which
test covers which item point there. Here: the whole torture folder through the scan and
through a real (tiny) training run and export, and what those unit tests leave open: a file
deleted between scan and decode, the training pixels and the tool's pixels of an EXIF-rotated
photo, the no-usable-images message from ``train()``, and a scan that streams with bounded work.
"""

from __future__ import annotations

import builtins
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sslstudio.core.data import scan
from sslstudio.core.data.scan import ImageIndex, ScanCancelled, scan_folder
from sslstudio.errors import NoUsableImagesError
from tests import image_factory as f
from tests.reliability.torture import IGNORED, NON_UTF8_NAME, write_torture_folder


def _deny(monkeypatch, *paths: Path) -> None:
    """Opening ``paths`` raises PermissionError, as for a file root may not read (tests run as
    root)."""
    denied = {os.fspath(p) for p in paths}
    real_open = builtins.open

    def guarded(file, *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and os.fspath(file) in denied:
            raise PermissionError(13, "Permission denied", os.fspath(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded)


def test_torture_folder_scan_reports_every_bad_file_with_its_reason(tmp_path, monkeypatch):
    folder = tmp_path / "torture"
    bad = write_torture_folder(folder)
    _deny(monkeypatch, folder / "good" / "red.png")
    bad["good/red.png"] = "unreadable"
    index = scan_folder(folder)
    skipped = {s.path: s for s in index.skipped}
    reported = {rel: category for rel, category in bad.items() if category != IGNORED}
    assert {rel: skipped[rel].category for rel in skipped} == reported
    assert index.ignored == sum(category == IGNORED for category in bad.values())
    for rel, cause in {
        "good/red.png": "PermissionError",
        "truncated.jpg": "OSError",
        "broken_link.jpg": "FileNotFoundError",
    }.items():
        assert skipped[rel].error == cause  # the exception class is kept beside the reason
    kept = {r.path for r in index.images}
    on_disk = {
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and not p.is_symlink()
    }
    assert kept == on_disk - set(bad)  # every other file is an image, decoded by content
    assert {"actually_png.jpg", "UPPER.JPG", *f.ODD_NAMES} <= kept
    assert NON_UTF8_NAME in kept or not os.path.lexists(folder / NON_UTF8_NAME)
    again = ImageIndex.from_json(index.to_json())  # the report survives odd names
    assert again == index and again.fingerprint() == index.fingerprint()
    text = index.summary()
    assert f"{len(reported)} skipped: " in text and "1 unreadable" in text
    assert "2 whole-slide image" in text and "3 unsupported TIFF" in text


def test_training_on_the_torture_folder_trains_and_exports_every_good_name(tmp_path, monkeypatch):
    """Items 1-13 end to end; 11: a file deleted after the scan; 12: names through export."""
    from sslstudio.core.data import indexstore
    from sslstudio.core.events import RunFinished, RunStarted
    from sslstudio.core.export.bundle import export_bundle
    from sslstudio.core.train import trainer
    from sslstudio.tool.bundle import load_bundle
    from tests.shapes import make_shapes_folder, tiny_config

    folder = tmp_path / "torture"
    bad = write_torture_folder(folder)
    make_shapes_folder(folder / "shapes", per_class=4, size=24, shapes=("circle", "square"))
    gone = folder / "good" / "green.jpg"
    real_scan = indexstore.scan_folder

    def scan_then_delete(*args, **kwargs):
        index = real_scan(*args, **kwargs)
        gone.unlink(missing_ok=True)  # the user tidies the folder while the run prepares
        return index

    monkeypatch.setattr(indexstore, "scan_folder", scan_then_delete)  # the trainer's, at call time
    cfg = tiny_config(folder, tmp_path / "run", max_steps=3, monitor_every=0, checkpoint_every=10)
    events = list(trainer.train(cfg))
    assert isinstance(events[-1], RunFinished), events[-1]
    started = next(e for e in events if isinstance(e, RunStarted))
    reported = sum(category != IGNORED for category in bad.values())
    notice = next(n for n in started.notices if "skipped" in n)
    # The scan reads headers only: the two truncated files fail in the decoder, with the deleted
    # one.
    assert notice.startswith(f"{reported + 1} file(s) skipped: ") and "1 unreadable" in notice
    on_disk = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert started.num_images == len(on_disk - set(bad))  # what decoded, and nothing else

    bundle = load_bundle(export_bundle(tmp_path / "run", tmp_path / "bundle", absolute_paths=True))
    odd = {*f.ODD_NAMES, NON_UTF8_NAME} if (folder / NON_UTF8_NAME).exists() else set(f.ODD_NAMES)
    assert odd <= set(bundle.paths)
    assert not set(bundle.paths) & set(bad) and "good/green.jpg" not in bundle.paths
    for rel in bundle.paths:
        assert (Path(bundle.items_root) / rel).is_file()  # every path round-trips to its file


def test_no_usable_images_is_one_clear_error_before_training(tmp_path):
    from sslstudio.core.events import RunStarted
    from sslstudio.core.train.trainer import train
    from tests.shapes import tiny_config

    folder = tmp_path / "bad"
    for i in range(3):
        f.write_truncated_jpeg(folder, f"t{i}.jpg")
    for i in range(2):
        f.write_text_as_png(folder, f"n{i}.png")
    f.write_os_junk(folder)
    events = []
    with pytest.raises(NoUsableImagesError) as info:
        events.extend(train(tiny_config(folder, tmp_path / "run")))
    assert str(info.value).startswith(f"no usable images in {folder}: 3 truncated, 2 not images.")
    assert not any(isinstance(e, RunStarted) for e in events)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_exif_rotated_photo_is_upright_in_training_pixels_and_the_tool(tmp_path):
    """Item 8: the cache the trainer samples crops from, and the tool's upload path."""
    from sslstudio.core.data.cache import build_cache
    from sslstudio.tool.inference import Model

    path = f.write_exif_jpeg(tmp_path / "photos")  # stored 64 x 32 left red / right blue
    f.write_image(tmp_path / "photos", "plain.png")
    data = build_cache(scan_folder(tmp_path / "photos"), 16, tmp_path / "cache")
    row = data.batch(np.array([data.relpaths().index("exif6.jpg")]))[0]
    tool = object.__new__(Model)  # only the pixel path: no model session needed
    tool.size = 16
    uploaded = tool.pixels_from_bytes(path.read_bytes())
    for pixels in (row, uploaded):
        assert np.abs(pixels[1, 8].astype(int) - f.RED).max() <= 40  # red on top: upright
        assert np.abs(pixels[14, 8].astype(int) - f.BLUE).max() <= 40
    naive = np.asarray(Image.open(path).convert("RGB").resize((16, 16)))
    assert np.abs(naive[8, 1].astype(int) - f.RED).max() <= 40  # stored sideways: red on the left


def test_scan_streams_with_bounded_work_in_flight_and_cancels(monkeypatch):
    """Item 15: the walk never runs far ahead of the type checks; progress comes while it walks;
    then every header is read (a folder under the header limit)."""
    n, workers = 10_000, 2
    walked, judged, headers = [0], [0], [0]
    lead = [0]

    def walk(index, cancel, previous=None):
        for i in range(n):
            scan._check(cancel)
            walked[0] += 1
            lead[0] = max(lead[0], walked[0] - judged[0])
            yield scan._Candidate(f"{i:05d}.png", f"/nowhere/{i:05d}.png", 100, 0)

    def sniff(c):
        time.sleep(0.0002)
        judged[0] += 1
        return c, (0, 0, "png")

    def judge(c, verify, channels, tiling=None):
        headers[0] += 1
        return 8, 8, "png"

    monkeypatch.setattr(scan, "_walk", walk)
    monkeypatch.setattr(scan, "_sniff", sniff)
    monkeypatch.setattr(scan, "_judge", judge)
    calls: list[tuple[int, int | None]] = []
    index = scan_folder(Path.cwd(), workers=workers, progress=lambda d, t: calls.append((d, t)))
    assert len(index.images) == n and calls[-1] == (n, n)  # listed, then n headers read
    assert headers[0] == n and index.unread == 0
    assert any(total is None and done > 0 for done, total in calls)  # progress while walking
    # chunks in flight (queued or being judged) + the chunk being gathered, in files
    in_flight = max(4 * workers, scan._IO_THREADS)
    assert lead[0] <= (in_flight + 1) * scan._SNIFF_CHUNK < n

    walked[0] = judged[0] = 0
    cancel = threading.Event()
    with pytest.raises(ScanCancelled):
        scan_folder(
            Path.cwd(),
            workers=workers,
            cancel=cancel,
            progress=lambda done, total: done >= 200 and cancel.set(),
        )
    assert walked[0] < n // 2  # stopped early, not after walking everything
