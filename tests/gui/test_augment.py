"""The Augment page: presets, the generated form, and the live preview made by the trainer's
pipeline."""

from __future__ import annotations

import numpy as np

from sslstudio.config import AugmentConfig
from sslstudio.core.transforms.presets import preset
from sslstudio.gui.pages.augment.page import ROWS, VIEWS, describe, render_views


def test_render_views_shapes_and_determinism() -> None:
    rng = np.random.default_rng(0)
    originals = [rng.integers(0, 255, (48, 48, 3), dtype=np.uint8) for _ in range(3)]
    a = render_views(originals, AugmentConfig(), size=32, views=4, seed=1)
    b = render_views(originals, AugmentConfig(), size=32, views=4, seed=1)
    c = render_views(originals, AugmentConfig(), size=32, views=4, seed=2)
    assert len(a) == 3 and all(len(row) == 4 for row in a)
    assert a[0][0].shape == (32, 32, 3) and a[0][0].dtype == np.uint8
    assert all(
        np.array_equal(x, y)
        for ra, rb in zip(a, b, strict=True)
        for x, y in zip(ra, rb, strict=True)
    )
    assert not all(
        np.array_equal(x, y)
        for ra, rc in zip(a, c, strict=True)
        for x, y in zip(ra, rc, strict=True)
    )
    # no augmentation at all: each view is the whole image, resized
    still = AugmentConfig(
        crop_scale_min=1.0,
        crop_ratio_min=1.0,
        crop_ratio_max=1.0,
        hflip_p=0,
        jitter_p=0,
        grey_p=0,
        blur_p=0,
    )
    flat = [np.full((48, 48, 3), 90, dtype=np.uint8)]
    out = render_views(flat, still, size=32, views=2, seed=0)
    assert np.abs(out[0][1].astype(int) - 90).max() <= 1


def test_describe_in_plain_words() -> None:
    lines = describe(preset("histopathology", 224), 224)
    text = " ".join(lines)
    assert (
        "90° rotations in every view" in text
        and "Stain (HED) jitter" in text
        and "Greyscale" not in text
    )
    assert "No flips or rotations" in " ".join(describe(AugmentConfig(hflip_p=0), 32))


def test_preview_appears_and_regenerates_on_change(ready_window, qtbot) -> None:
    page = ready_window.augment_page
    qtbot.waitUntil(lambda: page.previews_made >= 1, timeout=20_000)
    assert page.preview.image_count == ROWS * (1 + VIEWS)
    first = page.preview.images()[0][1]
    assert first.width() == page.image_size  # views at the training size
    made = page.previews_made
    page.form.control("hflip_p").setValue(1.0)  # as a user would: a control changes
    assert page.preset_combo.currentText() == "custom"
    qtbot.waitUntil(lambda: page.previews_made > made, timeout=10_000)
    assert ready_window.config_model.config.augment.hflip_p == 1.0
    assert ready_window.config_model.config.preset == "custom"


def test_debounce_coalesces_a_burst_of_changes(ready_window, qtbot) -> None:
    page = ready_window.augment_page
    qtbot.waitUntil(lambda: page.previews_made >= 1, timeout=20_000)
    qtbot.wait(300)
    made = page.previews_made
    box = page.form.control("brightness")
    for i in range(10):  # a spin box held down
        box.setValue(0.1 + i * 0.05)
    qtbot.waitUntil(lambda: page.previews_made > made, timeout=10_000)
    qtbot.wait(400)
    assert page.previews_made == made + 1


def test_preset_and_image_size_drive_the_form(ready_window, qtbot) -> None:
    page = ready_window.augment_page
    cfg = ready_window.config_model.config
    assert cfg.time_budget_s > 0 and page.preset_combo.currentText() == "histopathology"
    # under a time limit the page shows the planner's views for H&E (what the run will use)
    assert page.form.value() == cfg.augment != preset("histopathology", page.image_size)
    page.preset_combo.setCurrentText("natural")
    page.preset_combo.setCurrentText("histopathology")  # picked by hand: the preset itself
    assert page.form.value() == preset("histopathology", page.image_size)
    assert "H&E" in page.preset_description.text()
    ready_window.method_page.run_form.control("image_size").setValue(
        224
    )  # the Method page drives the size
    assert page.image_size == 224
    assert page.form.value() == preset("histopathology", 224)  # the large-image variant
    made = page.previews_made
    page.shuffle()
    qtbot.waitUntil(lambda: page.previews_made > made, timeout=20_000)
    assert page.preview.images()[0][1].width() == 224
