import dataclasses
import shutil
import threading
from collections import namedtuple

import numpy as np
import pytest

from sslstudio.core.data import cache as cache_mod
from sslstudio.core.data.cache import CacheCancelled, build_cache
from sslstudio.core.data.scan import scan_folder
from sslstudio.errors import NoUsableImagesError, SSLStudioError
from sslstudio.imaging import decode as imaging
from tests.image_factory import write_truncated_jpeg


def test_decodes_once_then_reuses_the_file(tiny_folder, tmp_path, monkeypatch):
    index = scan_folder(tiny_folder, verify=False)
    first = build_cache(index, 16, tmp_path / "c")
    assert first.array.shape == (24, 16, 16, 3) and first.location.endswith(".npy")
    assert np.array_equal(
        first.array[0], imaging.decode_resized(tiny_folder / index.images[0].path, 16)
    )
    calls = []
    monkeypatch.setattr(imaging, "decode_resized", lambda *a, **k: calls.append(a))
    again = build_cache(index, 16, tmp_path / "c")
    assert calls == [] and isinstance(again.array, np.memmap)
    assert np.array_equal(again.batch(np.array([3, 1])), first.array[[3, 1]])


def test_a_changed_folder_gets_a_new_cache(tiny_folder, tmp_path):
    a = build_cache(scan_folder(tiny_folder, verify=False), 16, tmp_path / "c")
    (tiny_folder / "circle" / "circle_0000.png").unlink()
    b = build_cache(scan_folder(tiny_folder, verify=False), 16, tmp_path / "c")
    assert a.location != b.location and len(b) == 23


def test_files_failing_to_decode_are_reported_and_never_indexed(tiny_folder, tmp_path):
    write_truncated_jpeg(tiny_folder / "circle")
    data = build_cache(scan_folder(tiny_folder, verify=False), 16, tmp_path / "c")
    assert len(data) == 24 and [f.path for f in data.failed] == ["circle/truncated.jpg"]
    assert data.failed[0].reason.startswith("truncated")
    assert "circle/truncated.jpg" not in data.relpaths()
    assert data.labels().shape == (24,)


def test_short_disk_keeps_a_small_cache_in_memory_and_refuses_a_huge_one(
    tiny_folder, tmp_path, monkeypatch
):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10, 10, 0))
    data = build_cache(scan_folder(tiny_folder, verify=False), 16, tmp_path / "c")
    assert data.location == "memory" and not list((tmp_path / "c").glob("*.npy"))
    monkeypatch.setattr(cache_mod, "IN_MEMORY_LIMIT", 100)
    with pytest.raises(SSLStudioError, match="lacks the space"):
        build_cache(scan_folder(tiny_folder, verify=False), 17, tmp_path / "c")


def test_cancel_leaves_no_partial_file(tiny_folder, tmp_path):
    stop = threading.Event()
    stop.set()
    with pytest.raises(CacheCancelled):
        build_cache(scan_folder(tiny_folder, verify=False), 16, tmp_path / "c", cancel=stop)
    assert not [
        p
        for p in (tmp_path / "c").iterdir()
        if p.suffix in (".npy", ".tmp") or p.name.startswith(".tmp")
    ]


def test_nothing_decodable_is_a_clear_error(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    write_truncated_jpeg(folder)
    with pytest.raises(NoUsableImagesError, match="1 truncated"):
        build_cache(scan_folder(folder, verify=False), 16, tmp_path / "c")


def test_damaged_cache_file_is_rebuilt_not_trusted(tiny_folder, tmp_path):
    index = scan_folder(tiny_folder, verify=False)
    first = build_cache(index, 16, tmp_path / "c")
    path = first.location
    del first
    with open(path, "r+b") as fh:
        fh.truncate(100)
    again = build_cache(index, 16, tmp_path / "c")
    assert again.array.shape == (24, 16, 16, 3)


def test_the_cache_folder_keeps_under_its_limit_by_deleting_the_least_recently_used(
    tiny_folder, tmp_path, monkeypatch
):
    import os

    index = scan_folder(tiny_folder, verify=False)
    one = 24 * 16 * 16 * 3  # bytes of the 16 px cache (its .npy is that plus a small header)
    monkeypatch.setenv("SSLSTUDIO_CACHE_LIMIT_GB", str(2.5 * one / 2**30))  # room for two
    a = build_cache(index, 16, tmp_path / "c")
    b = build_cache(index, 17, tmp_path / "c")
    os.utime(a.location.replace(".npy", ".json"), (1, 1))  # a: used long ago
    build_cache(index, 16, tmp_path / "c")  # re-opening a marks it used now
    c = build_cache(index, 15, tmp_path / "c")  # a third: the least recently used (b) goes
    left = {p.name for p in (tmp_path / "c").glob("*.npy")}
    assert left == {os.path.basename(a.location), os.path.basename(c.location)}
    assert b.array[0].shape == (17, 17, 3)  # b's open map still reads after its name went


def test_a_cache_bigger_than_the_limit_stays_in_memory_or_is_refused(
    tiny_folder, tmp_path, monkeypatch
):
    monkeypatch.setenv("SSLSTUDIO_CACHE_LIMIT_GB", "0.000001")  # ~1 KB
    index = scan_folder(tiny_folder, verify=False)
    assert build_cache(index, 16, tmp_path / "c").location == "memory"
    monkeypatch.setattr(cache_mod, "IN_MEMORY_LIMIT", 100)
    with pytest.raises(
        SSLStudioError,
        match=r"needs 20\.3 KiB over the cache limit of 1\.0 KiB \(SSLSTUDIO_CACHE_LIMIT_GB\)",
    ):
        build_cache(index, 17, tmp_path / "c")
    monkeypatch.setenv("SSLSTUDIO_CACHE_LIMIT_GB", "lots")  # unreadable: the default
    assert cache_mod.cache_limit() == cache_mod.DEFAULT_LIMIT


def test_a_runs_input_normalisation_applies_to_every_batch_read(tiny_folder, tmp_path):
    from sslstudio.imaging.stain import reinhard

    raw = build_cache(scan_folder(tiny_folder, verify=False), 16, tmp_path / "c")
    normed = dataclasses.replace(raw, input_norm="reinhard")
    idx = np.arange(min(4, len(raw)))
    np.testing.assert_array_equal(normed.batch(idx), reinhard(raw.batch(idx)))
    assert not np.array_equal(normed.batch(idx), raw.batch(idx))
    assert raw.input_norm == "none"  # the cache on disk and other readers stay raw
