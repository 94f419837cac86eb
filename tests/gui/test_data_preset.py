"""Opening a folder picks the augmentation preset its images look like, and says why."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from sslstudio.paths import sample_images_dir

CIFAR = Path("/work/shared/data/cifar10-subset/train")


def photos(folder: Path) -> Path:
    """40 photos of everyday things: CIFAR-10 files when this machine has them, else made-up
    32 px scenes (sky over grass, a brown or red object) with the same colour statistics."""
    folder.mkdir()
    if CIFAR.is_dir():
        classes = sorted(CIFAR.iterdir())
        for k in range(40):
            files = sorted(classes[k % len(classes)].iterdir())
            shutil.copy(files[k], folder / f"{k:02d}_{files[k].name}")
        return folder
    rng = np.random.default_rng(1)
    for k in range(40):
        a = np.empty((32, 32, 3), np.float32)
        a[:16] = (100 + 20 * rng.random(), 150, 220)
        a[16:] = (60, 140 + 30 * rng.random(), 50)
        a[10:24, 8:22] = (150, 90, 50) if k % 2 else (200, 40, 30)
        a = np.clip(a + rng.normal(0, 12, a.shape), 0, 255).astype(np.uint8)
        Image.fromarray(a).save(folder / f"{k:02d}.png")
    return folder


def _open(window, qtbot, folder) -> None:  # noqa: ANN001
    window.open_folder(folder)
    qtbot.waitUntil(lambda: window.data_page.index is not None, timeout=30_000)


def test_he_tiles_choose_histopathology_and_photos_natural(window, qtbot, tmp_path: Path) -> None:
    page, model = window.data_page, window.config_model
    _open(window, qtbot, sample_images_dir())
    assert model.config.preset == "histopathology"
    assert window.augment_page.preset_combo.currentText() == "histopathology"
    assert model.config.augment.hed_p > 0  # the preset's values came with its name
    line = page.recognised.text()
    assert page.recognised.isVisible() and "stained tissue (H&amp;E)" in line
    assert "pink and purple" in line and "histopathology" in line
    # and an image size for the time limit: the sample's tiles are 150 px, a 10-minute CPU
    # run trains at 32 px (core.train.budget.planned_size), said on the same line
    assert model.config.time_budget_s == 600 and model.config.image_size == 32
    assert "Image size: 32 px: the images are 150 px" in line and "10 min run" in line
    # and what `sslstudio train` plans for H&E: stronger colour views, features blended with
    # the untrained network's so they hold on new slides
    assert model.config.init_blend == 0.5 and "blended with 50% of the untrained" in line
    assert model.config.augment.grey_p == 0.2 and model.config.augment.hed_sigma == 0.2

    _open(window, qtbot, photos(tmp_path / "photos"))
    assert model.config.preset == "natural"
    assert window.augment_page.preset_combo.currentText() == "natural"
    line = page.recognised.text()
    assert "everyday photos" in line and "ordinary colour photos" in line
    assert model.config.image_size == 32 and "Image size: 32 px, the images&#x27; own size" in line
    assert model.config.init_blend == 0 and "blended" not in line  # photos: no stain shift


def test_the_user_can_still_choose_another_preset(window, qtbot) -> None:
    _open(window, qtbot, sample_images_dir())
    window.augment_page.preset_combo.setCurrentText("microscopy")
    assert window.config_model.config.preset == "microscopy"
    assert "<b>microscopy</b> in use" in window.data_page.recognised.text()
    window.data_page.open_folder(window.data_page.folder, rescan=True)  # the same folder again
    qtbot.waitUntil(lambda: window.data_page.index is not None, timeout=30_000)
    assert window.config_model.config.preset == "microscopy"  # a rescan keeps the choice
