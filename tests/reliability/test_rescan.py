"""A stored scan that no longer matches its folder in the extreme ways: the folder was empty (a
copy still under way) and is now full, or held images and lost every one, or held only files
set aside. Each opens again without a by-hand ``sslstudio scan``."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sslstudio.cli.main import main
from sslstudio.core.data.indexstore import open_index
from sslstudio.core.data.scan import scan_folder
from sslstudio.paths import cache_dir
from tests.shapes import make_shapes_folder

TINY = ["--backbone", "tiny_cnn", "--image-size", "16", "--batch-size", "8", "--threads", "1"]


def _fill(root: Path, names: list[str]) -> None:
    for i, rel in enumerate(names):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (12 + i, 12), (i * 20, 50, 90)).save(path)


def _empty(root: Path) -> None:
    for child in root.iterdir():
        shutil.rmtree(child) if child.is_dir() else child.unlink()


def _only_bad(root: Path) -> None:
    (root / "a").mkdir(parents=True, exist_ok=True)
    (root / "a" / "bad.png").write_text("not a png")


GOOD = ["a/0.png", "a/1.png", "b/0.png", "loose.png"]


@pytest.mark.parametrize(
    "before, after",
    [
        ("nothing", "images"),  # first opened while the copy had not begun
        ("empty subfolders", "images"),
        ("only bad files", "images"),
        ("images", "nothing"),  # every file removed
        ("images", "only bad files"),
        ("images", "other images"),  # every old folder gone, new ones in their place
    ],
)
def test_a_stored_scan_of_an_extreme_folder_reopens_as_a_fresh_scan_would(tmp_path, before, after):
    root = tmp_path / "data"
    root.mkdir()
    states = {
        "nothing": lambda: None,
        "empty subfolders": lambda: [(root / c).mkdir() for c in ("a", "b")],
        "only bad files": lambda: _only_bad(root),
        "images": lambda: _fill(root, GOOD),
        "other images": lambda: _fill(root, ["c/0.png", "d/1.png"]),
    }
    cache = tmp_path / "cache"
    states[before]()
    first = open_index(root, cache)
    _empty(root)
    states[after]()
    again = open_index(root, cache)  # an IndexError here before the fix
    fresh = scan_folder(root, verify=False)
    assert [r.path for r in again.images] == [r.path for r in fresh.images]
    assert again.skipped == fresh.skipped and again.fingerprint() == fresh.fingerprint()
    assert len(first.images) == (4 if before == "images" else 0)


def test_train_and_embed_on_a_folder_first_opened_empty(tmp_path, capsys):
    folder = tmp_path / "later"
    folder.mkdir()
    assert main(["train", str(folder), *TINY, "--out", str(tmp_path / "r0")]) != 0
    assert "no usable images" in capsys.readouterr().err.lower()
    assert any((cache_dir() / "indexes").iterdir())  # that empty scan was kept
    make_shapes_folder(folder, per_class=6, size=16, shapes=("circle", "square"))
    run = tmp_path / "run"
    argv = ["train", str(folder), *TINY, "--max-steps", "1", "--quiet", "--out", str(run)]
    assert main(argv) == 0, capsys.readouterr().err
    out = tmp_path / "f.npz"
    assert main(["embed", str(run), str(folder), "-o", str(out)]) == 0
    with np.load(out, allow_pickle=False) as z:
        assert z["features"].shape[0] == 12


def test_the_windows_scan_of_a_folder_first_opened_empty(tmp_path, qapp):
    from sslstudio.gui.run.worker import ScanWorker

    folder = tmp_path / "later"
    folder.mkdir()
    results: list = []
    for _ in range(2):  # the Data page's scan: empty, then after the copy finished
        worker = ScanWorker(str(folder), verify=False)
        worker.done.connect(lambda job, got: results.append(len(got[0].images)))
        worker.failed.connect(lambda job, msg: results.append(msg))
        worker.run()
        _fill(folder, GOOD)
    assert results == [0, 4]
