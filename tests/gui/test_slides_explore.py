"""A generated pyramidal TIFF trains, and its tiles show in the neighbour browser."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sslstudio.imaging import slides
from tests.gui.explore_helpers import open_explore_page
from tests.shapes import tiny_config
from tests.slide_factory import write_slide

pytestmark = pytest.mark.skipif(not slides.available(), reason="openslide is not installed")


@pytest.fixture
def slide_run(tmp_path):
    from sslstudio.core.events import RunFinished, RunStarted
    from sslstudio.core.train.trainer import train

    data = tmp_path / "data"
    write_slide(data / "case1.tif")
    write_slide(data / "case2.tif", width=2048, height=1536)
    run = tmp_path / "run"
    cfg = tiny_config(data, run, max_steps=2, monitor_every=0, image_size=24, batch_size=8)
    cfg = type(cfg)(**{**cfg.__dict__, "tile_px": 64, "tile_mpp": 1.0})
    events = list(train(cfg))
    assert isinstance(events[-1], RunFinished), events[-1]
    started = next(e for e in events if isinstance(e, RunStarted))
    assert started.num_images > 40  # tiles of two slides, nothing else
    return run


@pytest.fixture
def page(qtbot, themed_app, slide_run):
    p = open_explore_page(qtbot, slide_run)
    yield p
    p.shutdown()


def test_tiles_show_in_the_neighbour_browser_and_group_by_slide(page, qtbot):
    from sslstudio.gui.pages.explore.neighbour_browser import full_size_file

    emb = page.session.emb
    paths = list(emb.paths)
    assert all(slides.parse_address(p) for p in paths)
    page.browser.queryRequested.emit(0)
    hits = page.browser.model
    rows = [int(r) for r in hits.rows()]
    assert 0 not in rows and hits.rowCount() == page.browser.k  # the query is not its neighbour
    # thumbnails of tiles decode (a placeholder would be the same for every row)
    qtbot.waitUntil(lambda: page.cache.decoded >= 2, timeout=20_000)
    assert not page.cache._failed  # every tile thumbnail decoded so far
    query_slide = slides.parse_address(paths[0]).slide
    page.browser.group_combo.setCurrentText("Leave out the same folder or slide")
    page.browser.queryRequested.emit(0)
    others = [slides.parse_address(paths[int(r)]).slide for r in hits.rows()]
    assert others and all(s != query_slide for s in others)
    # "open full size" hands the viewer a real PNG of the tile
    png = Path(full_size_file(page.browser.query_path))
    assert png.suffix == ".png" and np.asarray(Image.open(png)).shape == (64, 64, 3)


def test_the_data_page_shows_slides_as_tiles_and_tiles_them_again(window, qtbot, tmp_path):
    data = tmp_path / "slides"
    write_slide(data / "case1.tif")
    page = window.data_page
    window.open_folder(data)
    qtbot.waitUntil(lambda: page.index is not None, timeout=60_000)
    card = page.tiling_card
    assert card.isVisibleTo(page) and "TILE" in page.summary["formats"].text()
    at_20x = len(page.index.images)
    first = page.image_model.data(page.image_model.index(0))
    assert first.startswith("case1 ") and "#" not in first  # "case1 1120, 448", not the address
    assert f"{at_20x:,} tissue tiles from 1 slide" in card.caption.text()
    card.size_spin.setValue(48)
    card.mpp_spin.setValue(1.0)
    card.apply_button.click()  # 48 px at 10x: a few times more tiles than 224 px at 20x
    qtbot.waitUntil(
        lambda: page.index is not None and len(page.index.images) != at_20x, timeout=60_000
    )
    assert len(page.index.images) > at_20x
    cfg = window.config_model.config
    assert (cfg.tile_px, cfg.tile_mpp) == (48, 1.0)  # the run tiles as the page shows
    assert "--tile-px 48 --tile-mpp 1" in window.method_page.command_edit.toPlainText()
    # the tissue share: only squares that are nearly all tissue, fewer of them (96 µm squares
    # straddle the tissue's edges; squares that tile it exactly would not change)
    at_half = len(page.index.images)
    card.tissue_spin.setValue(95)
    card.apply_button.click()
    qtbot.waitUntil(
        lambda: page.index is not None and len(page.index.images) != at_half, timeout=60_000
    )
    assert 0 < len(page.index.images) < at_half
    assert window.config_model.config.tile_tissue == 0.95
    assert "at least 95% tissue" in card.caption.text()
    assert "--tile-tissue 0.95" in window.method_page.command_edit.toPlainText()
