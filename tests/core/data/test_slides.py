"""Whole-slide images: tissue tiles from a generated pyramidal TIFF, addressable as paths."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sslstudio.core.data.scan import scan_folder
from sslstudio.imaging import decode as imaging
from sslstudio.imaging import slides
from sslstudio.imaging.slides import SlideOptions, TileAddress, parse_address
from tests.slide_factory import TISSUE, write_slide

pytestmark = pytest.mark.skipif(not slides.available(), reason="openslide is not installed")

OPTIONS = SlideOptions(tile_px=64, mpp=1.0)  # level 1 of a 0.5 µm/px slide: 128 level-0 px a tile


def test_addresses_round_trip_and_ordinary_paths_are_not_tiles():
    t = TileAddress("cases/a b.svs", 1, 2048, 512, 224)
    assert str(t) == "cases/a b.svs#1:2048:512:224" and parse_address(str(t)) == t
    for path in ("a.png", "notes#1.png", "x.svs#1:2:3", "x.svs#a:1:2:3", "#0:0:0:1", "x#0:0:0:0"):
        assert parse_address(path) is None, path


def test_tissue_mask_finds_stain_not_glass_or_pen():
    rgb = np.full((100, 200, 3), 238, np.uint8)
    rgb[20:80, 50:150] = (200, 100, 180)
    rgb[0:10, 0:10] = (15, 15, 20)
    mask = slides.tissue_mask(rgb)
    assert mask[20:80, 50:150].all() and mask.sum() == 60 * 100


def test_options_are_checked():
    with pytest.raises(ValueError, match="tile size"):
        SlideOptions(tile_px=4)
    with pytest.raises(ValueError, match="µm/px"):
        SlideOptions(mpp=0.0)


def test_a_slide_becomes_tiles_of_tissue_that_decode_like_files(tmp_path):
    root = tmp_path / "data"
    write_slide(root / "slides" / "case1.tif")
    Image.new("RGB", (40, 40), (10, 200, 30)).save(root / "slides" / "loose.png")
    index = scan_folder(root, tiling=OPTIONS)
    assert not index.skipped
    tiles = [r for r in index.images if r.format == "tile"]
    assert len(index.images) == len(tiles) + 1
    rows, cols = TISSUE
    inside = ((rows.stop - rows.start) // 128) * ((cols.stop - cols.start) // 128)
    assert inside <= len(tiles) <= inside + 8  # the block's grid squares, no glass, no pen
    for rec in tiles:
        t = parse_address(rec.path)
        assert t is not None and t.slide == "slides/case1.tif" and rec.label == "slides"
        assert (t.level, t.side, rec.width) == (1, 64, 64)
        assert rows.start - 128 < t.y < rows.stop and cols.start - 128 < t.x < cols.stop
    pixels = imaging.decode(root / tiles[0].path)
    assert pixels.shape == (64, 64, 3)
    assert abs(int(pixels[..., 1].mean()) - 115) < 30  # the pink stain, not white glass
    small = imaging.decode_resized(root / tiles[0].path, 32)
    assert small.shape == (32, 32, 3)
    info = imaging.read_info(root / tiles[0].path)
    assert (info.width, info.height, info.format) == (64, 64, "tile")
    assert f", {len(tiles)} of them tissue tiles of 1 slide in " in index.summary()
    on_disk = sum(p.stat().st_size for p in (root / "slides").iterdir())
    assert index.stats().total_bytes == on_disk  # a slide's bytes once, not once per tile


def test_bad_tile_addresses_give_reasons(tmp_path):
    slide = write_slide(tmp_path / "s.tif")
    with pytest.raises(imaging.DecodeError, match="no level 9"):
        imaging.decode(f"{slide}#9:0:0:64")
    with pytest.raises(imaging.DecodeError, match="unreadable"):
        imaging.decode(f"{tmp_path / 'missing.tif'}#0:0:0:64")
    with pytest.raises(imaging.DecodeError, match="too large"):
        imaging.decode(f"{slide}#0:0:0:100000")


def test_without_tiling_a_pyramid_reads_as_its_first_page(tmp_path):
    write_slide(tmp_path / "s.tif", width=512, height=512)
    index = scan_folder(tmp_path, tiling=None)
    assert [(r.path, r.format, r.width) for r in index.images] == [("s.tif", "tiff", 512)]


def test_slides_are_tiled_in_a_folder_too_big_for_headers(tmp_path):
    slide = write_slide(tmp_path / "case.tif")
    assert slide.stat().st_size > 2**20  # big enough to be looked at as a possible slide
    for i in range(3):
        Image.new("RGB", (20, 20), (i, 9, 9)).save(tmp_path / f"{i}.png")
    index = scan_folder(tmp_path, tiling=OPTIONS, header_limit=2)
    formats = [r.format for r in index.images]
    assert formats.count("png") == 3 and formats.count("tile") > 20 and "tiff" not in formats
    assert index.unread == 3  # the small images wait for a lazy read; the slide could not


def test_a_rescan_reuses_the_tiles_of_an_unchanged_slide(tmp_path, monkeypatch):
    from sslstudio.core.data.indexstore import open_index

    root = tmp_path / "data"
    write_slide(root / "slides" / "case.tif")
    (root / "other").mkdir()
    first = open_index(root, tmp_path / "cache", tiling=OPTIONS)
    Image.new("RGB", (20, 20)).save(root / "other" / "new.png")  # another folder changes
    calls = []
    real = slides.tiles
    monkeypatch.setattr(slides, "tiles", lambda *a: calls.append(a) or real(*a))
    again = open_index(root, tmp_path / "cache", tiling=OPTIONS)
    assert calls == []  # the slide's folder did not change: its tiles come from the last scan
    tiles = [r.path for r in again.images if r.format == "tile"]
    assert tiles == [r.path for r in first.images] and "other/new.png" in {
        r.path for r in again.images
    }


def test_a_vms_slide_is_one_slide_not_three_images(tmp_path):
    from tests.slide_factory import write_vms

    root = tmp_path / "data"
    vms = write_vms(root / "slides")
    Image.new("RGB", (40, 40), (10, 200, 30)).save(root / "slides" / "loose.png")
    assert slides.owned_names(str(vms.parent), sorted(p.name for p in vms.parent.iterdir())) == {
        "case2.jpg",
        "case2_map.jpg",
    }
    index = scan_folder(root, tiling=SlideOptions(tile_px=64, mpp=None))
    assert not index.skipped
    paths = [r.path for r in index.images]
    assert "slides/loose.png" in paths
    assert not any(p.endswith((".jpg", "_map.jpg")) for p in paths)  # read through the slide
    tiles = [r for r in index.images if r.format == "tile"]
    assert tiles and all(parse_address(r.path).slide == "slides/case2.vms" for r in tiles)
    pixels = imaging.decode(root / tiles[len(tiles) // 2].path)
    assert pixels.shape == (64, 64, 3) and abs(int(pixels[..., 1].mean()) - 115) < 30
    # and it trains: two steps on its tiles, with the run's own tiling flags
    from sslstudio.core.events import RunFinished
    from sslstudio.core.train.trainer import train
    from tests.shapes import tiny_config

    cfg = tiny_config(root, tmp_path / "run", max_steps=2, tile_px=64, tile_mpp=0.0)
    done = [ev for ev in train(cfg) if isinstance(ev, RunFinished)]
    assert done and done[0].step == 2


def test_an_mrxs_is_one_entry_and_its_data_folder_is_not_scanned(tmp_path):
    root = tmp_path / "data"
    data = root / "case3"
    data.mkdir(parents=True)
    (root / "case3.mrxs").write_bytes(b"\xff\xd8 not really a slide")
    (data / "Slidedat.ini").write_text("[GENERAL]\n")
    for k in range(3):
        (data / f"Data000{k}.dat").write_bytes(b"\0" * 64)
    Image.new("RGB", (32, 32), (10, 200, 30)).save(data / "stray.png")  # inside the slide
    index = scan_folder(root, tiling=OPTIONS)
    assert [s.path for s in index.skipped] == ["case3.mrxs"]  # one line for the slide
    assert (
        "OpenSlide cannot open it" in index.skipped[0].reason and "MRXS" in index.skipped[0].reason
    )
    assert not index.images  # nothing inside its data folder became an image
