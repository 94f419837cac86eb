"""Honest empty and error states on the Data page: a banner, no stale figures, no memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def _images(folder: Path, n: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(n)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


def _open_then(window, qtbot, first: Path, second: Path):  # noqa: ANN001, ANN202
    window.open_folder(first)
    qtbot.waitUntil(lambda: window.data_page.index is not None, timeout=10_000)
    window.open_folder(second)
    qtbot.waitUntil(lambda: not window.data_page.is_scanning, timeout=10_000)
    return window.data_page


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_a_path_that_is_no_folder_gets_a_banner_and_leaves_nothing_behind(
    window, qtbot, image_folder: Path, tmp_path: Path, kind: str
) -> None:
    bad = tmp_path / "nope" if kind == "missing" else image_folder / "a" / "0.png"
    page = _open_then(window, qtbot, image_folder, bad)
    assert page.banner.isVisible() and page.banner.level == "error"
    expected = "does not exist" if kind == "missing" else "is a file, not a folder"
    assert expected in page.banner.text()
    assert page.index is None and page.folder is None
    assert page.image_model.rowCount() == 0  # no thumbnails of the previous folder
    assert {v.text() for v in page.summary.values()} == {"–"}
    assert not page.rescan_button.isEnabled()
    assert str(bad) not in window.settings.recent_folders()
    assert window.settings.recent_folders() == [str(image_folder)]
    assert window.windowTitle() == "SSL Studio"
    assert expected in window.statusBar().currentMessage()
    assert not window.train_page.start_button.isEnabled()


def test_an_empty_folder_says_so(window, qtbot, image_folder: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no images here")
    page = _open_then(window, qtbot, image_folder, empty)
    qtbot.waitUntil(lambda: page.index is not None, timeout=10_000)
    assert page.banner.isVisible() and "No images found" in page.banner.text()
    assert page.image_model.rowCount() == 0 and page.summary["images"].text() == "0"
    assert "Scanning" not in window.statusBar().currentMessage()
    assert "No images found" in window.statusBar().currentMessage()
    assert str(empty) not in window.settings.recent_folders()
    assert window.windowTitle() == "SSL Studio"
    assert not window.train_page.start_button.isEnabled()


@pytest.mark.parametrize("n", [1, 3])
def test_a_folder_of_one_to_three_images_is_too_few(window, qtbot, tmp_path: Path, n: int) -> None:
    folder = _images(tmp_path / f"few{n}", n)
    window.open_folder(folder)
    page = window.data_page
    qtbot.waitUntil(lambda: page.index is not None, timeout=10_000)
    assert page.banner.isVisible() and page.banner.level == "caution"
    assert f"Only {n} image" in page.banner.text() and "too few" in page.banner.text()
    assert not window.train_page.start_button.isEnabled()


def test_a_good_folder_after_a_bad_one_clears_the_banner(
    window, qtbot, image_folder: Path, tmp_path: Path
) -> None:
    window.open_folder(tmp_path / "gone")
    page = window.data_page
    assert page.banner.isVisible()
    window.open_folder(image_folder)
    qtbot.waitUntil(lambda: page.index is not None, timeout=10_000)
    assert not page.banner.isVisible() and page.banner.text() == ""
    assert page.folder == str(image_folder) and page.summary["images"].text() == "6"
    assert window.windowTitle().startswith("images")
