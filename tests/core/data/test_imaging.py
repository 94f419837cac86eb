"""sslstudio.imaging.decode: every catalogue file gives the right pixels or the right reason (items
1-14)."""

from __future__ import annotations

import builtins
import io
import os
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFile, ImageOps

from sslstudio.imaging import decode as imaging
from sslstudio.imaging.decode import DecodeError, decode, decode_resized, read_info
from tests import image_factory as f


def reason(path: Path, **kwargs) -> DecodeError:
    with pytest.raises(DecodeError) as info:
        decode(path, **kwargs)
    return info.value


def close(pixel, colour, tol: int = 40) -> bool:
    return bool(np.all(np.abs(np.asarray(pixel, int) - np.asarray(colour, int)) <= tol))


SNIFF = {
    b"\xff\xd8\xff\xe0\x00\x10JFIF": "jpeg",
    b"\x89PNG\r\n\x1a\n\x00\x00": "png",
    b"II*\x00\x08\x00\x00\x00": "tiff",
    b"MM\x00*\x00\x00\x00\x08": "tiff",
    b"II+\x00\x08\x00\x00\x00": "tiff",
    b"GIF89a\x01\x00": "gif",
    b"RIFF\x00\x00\x00\x00WEBPVP8 ": "webp",
    b"BM" + bytes(12) + (40).to_bytes(4, "little"): "bmp",
    b"BMW is a car maker, not a bitmap": None,
    b"hello world": None,
    b"": None,
}


def test_sniff_format_by_magic_bytes():
    assert {head: imaging.sniff_format(head) for head in SNIFF} == SNIFF


def test_is_ignored_name_and_reason_category():
    junk = (".DS_Store", "._x.jpg", "Thumbs.db", "thumbs.db", "desktop.ini", ".x.png", "__MACOSX")
    assert all(imaging.is_ignored_name(name) for name in junk)
    assert not any(imaging.is_ignored_name(name) for name in ("x.jpg", "Thumbs.db.jpg", "a.b.png"))
    categories = {
        "too large (20000x20000 px)": "too large",
        "whole-slide image: needs tiling (9x9 px)": "whole-slide image",
        "unsupported TIFF (C=5, float32): choose channels": "unsupported TIFF",
        "empty file": "empty file",
    }
    assert {r: imaging.reason_category(r) for r in categories} == categories


WHITE, BLACK = (255, 255, 255), (0, 0, 0)

# Catalogue file -> its exact reason (items 1, 3, 4, 6, 10).
REASONS = {
    "empty.jpg": "empty file",
    "notes.png": "not an image",
    "bomb.png": "too large (20000x20000 px)",
    "slide.tif": "whole-slide image: needs tiling (100000x80000 px)",
    "float32.tif": "unsupported TIFF (C=1, float32): choose channels",
    "stack.tif": "unsupported TIFF (C=3, uint16): choose channels",
    "one_pixel.png": "too small (1x1 px)",
    "thin.png": "too small (1x10000 px)",
}

# Catalogue file -> (format by content, [(row, col), colour, tolerance]) (items 1, 7, 8, 9).
PIXELS = {
    "actually_png.jpg": ("png", [((5, 5), f.GREEN, 0)]),
    "UPPER.JPG": ("jpeg", [((16, 16), f.BLUE, 40)]),
    "cmyk.jpg": ("jpeg", [((16, 16), f.RED, 40)]),  # Adobe-inverted CMYK
    "palette_trns.png": ("png", [((8, 4), WHITE, 0), ((8, 28), f.RED, 0)]),
    "la.png": ("png", [((8, 4), WHITE, 0), ((8, 28), BLACK, 0)]),
    "rgba.png": ("png", [((8, 4), WHITE, 0), ((8, 20), f.BLUE, 0), ((8, 40), (127,) * 3, 1)]),
    "bilevel.png": ("png", [((8, 4), BLACK, 0), ((8, 28), WHITE, 0)]),
    "grey.png": ("png", [((8, 4), (50,) * 3, 0), ((8, 28), (200,) * 3, 0)]),
    "exif6.jpg": ("jpeg", [((10, 16), f.RED, 40), ((54, 16), f.BLUE, 40)]),  # red on top
    "animated.gif": ("gif", [((12, 12), f.RED, 10)]),  # first frame
    "animated.png": ("png", [((12, 12), f.RED, 10)]),
}


@pytest.mark.parametrize("name", sorted(REASONS))
def test_catalogue_reasons(tmp_path, name):
    path = f.CATALOGUE[name][0](tmp_path)
    start = time.perf_counter()
    assert reason(path).reason == REASONS[name]
    with pytest.raises(DecodeError) as header:
        read_info(path)  # the header alone already tells
    assert header.value.reason == REASONS[name]
    assert time.perf_counter() - start < 5  # bombs and slides are never decoded


@pytest.mark.parametrize("name", sorted(PIXELS))
def test_catalogue_pixels(tmp_path, name):
    path = f.CATALOGUE[name][0](tmp_path)
    fmt, spots = PIXELS[name]
    assert read_info(path).format == fmt
    arr = decode(path)
    for (row, col), colour, tol in spots:
        assert close(arr[row, col], colour, tol), (name, row, col, arr[row, col])


@pytest.mark.parametrize("name", [n for n, (_, cat) in f.CATALOGUE.items() if cat is None])
def test_every_decodable_fixture_is_hxwx3_uint8_contiguous_writable(tmp_path, name):
    writer, _ = f.CATALOGUE[name]
    path = writer(tmp_path)
    for arr in (decode(path), decode_resized(path, 24), decode_resized(path, 20, square=False)):
        assert arr.ndim == 3 and arr.shape[2] == 3 and arr.dtype == np.uint8
        assert arr.flags.c_contiguous and arr.flags.writeable
    assert decode_resized(path, 24).shape == (24, 24, 3)
    info = read_info(path)
    assert (info.height, info.width) == decode(path).shape[:2]


def test_truncated_jpeg_fails_at_load_not_open(tmp_path):
    path = f.write_truncated_jpeg(tmp_path)
    assert read_info(path).width == 128  # the header survived; only a full decode notices
    e = reason(path)
    assert imaging.reason_category(e.reason) == "truncated" and e.error == "OSError"
    with pytest.raises(DecodeError, match="^truncated"):
        read_info(path, verify=True)
    with pytest.raises(DecodeError, match="^truncated"):
        decode_resized(path, 16)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_broken_zlib_png_is_truncated(tmp_path):
    path = f.write_broken_zlib_png(tmp_path)
    assert imaging.reason_category(reason(path).reason) == "truncated"
    with pytest.raises(DecodeError, match="^truncated"):
        read_info(path, verify=True)


@pytest.mark.parametrize("side", [20000, 10000])  # past Pillow's error / warning threshold
def test_bomb_warns_nothing_and_leaves_pillow_alone(tmp_path, side):
    path = f.write_bomb_png(tmp_path, "bomb.png", (side, side))
    before = Image.MAX_IMAGE_PIXELS
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert reason(path).reason == f"too large ({side}x{side} px)"
    assert before == Image.MAX_IMAGE_PIXELS


def test_max_pixels_is_per_call(tmp_path):
    path = f.write_image(tmp_path, "small.png", size=(64, 64))
    assert reason(path, max_pixels=1000).reason == "too large (64x64 px)"
    assert decode(path).shape == (64, 64, 3)
    # A caller may allow more than Pillow's own cap: the header is read, nothing is decoded.
    info = read_info(f.write_bomb_png(tmp_path), max_pixels=10**9)
    assert (info.width, info.height) == (20000, 20000)


def levels(arr: np.ndarray) -> int:
    return len(np.unique(arr[:, :, 0]))


GREY16 = {
    "png": f.write_grey16_png,
    "tiff-le": f.write_grey16_tiff,
    "tiff-be": lambda d: f.write_grey16_tiff(d, "be.tif", ">"),
    "12-bit-in-16": f.write_12bit_in_16,
}


@pytest.mark.parametrize("kind", sorted(GREY16))
def test_16_bit_grey_keeps_its_levels(tmp_path, kind):
    writer = GREY16[kind]
    arr = decode(writer(tmp_path))
    assert levels(arr) >= 250
    assert decode_resized(writer(tmp_path), 64).max() > 240  # the resized path stretches too
    assert (arr == 255).all(axis=2).mean() < 0.01
    assert (arr[:, :, 0] == arr[:, :, 1]).all() and (arr[:, :, 1] == arr[:, :, 2]).all()
    assert arr[0, 0, 0] < 5 and arr[-1, -1, 0] > 250  # the ramp runs dark to bright


def test_16_bit_grey_endianness_gives_identical_pixels_unlike_naive_pillow(tmp_path):
    le = decode(f.write_grey16_tiff(tmp_path, "le.tif", "<"))
    be = decode(f.write_grey16_tiff(tmp_path, "be.tif", ">"))
    png = decode(f.write_grey16_png(tmp_path))
    assert np.array_equal(le, be) and np.array_equal(le, png)
    naive = np.asarray(Image.open(f.write_grey16_png(tmp_path)).convert("RGB"))
    assert (naive == 255).all(axis=2).mean() > 0.99  # the failure this policy exists for


def test_16_bit_rgb_png_is_stretched_jointly(tmp_path):
    arr = decode(f.write_rgb16_png(tmp_path))  # 12-bit values; Pillow keeps the high byte
    assert arr[:, :, 0].max() >= 250 and arr[:, :, 0].min() <= 5
    assert 90 < arr[:, :, 1].mean() < 160  # the constant mid level stays mid: one stretch for all
    assert arr[:, :, 2].max() <= 5


def test_16_bit_rgb_tiff_full_depth_with_tifffile(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    rgb = np.zeros((64, 64, 3), np.uint16)
    rgb[:, :, 0] = f.ramp16((64, 64), 4095)
    rgb[:, :, 1] = 2000
    tifffile.imwrite(tmp_path / "rgb16.tif", rgb, photometric="rgb")
    arr = decode(tmp_path / "rgb16.tif")
    assert levels(arr) >= 250
    assert 100 < arr[:, :, 1].mean() < 150 and arr[:, :, 2].max() == 0


def test_float32_tiff_with_chosen_channel(tmp_path):
    assert levels(decode(f.write_float32_tiff(tmp_path), channels=(0, 0, 0))) >= 250


def test_five_channel_tiff_asks_for_channels(tmp_path):
    path = f.write_five_channel_tiff(tmp_path)
    e = reason(path)
    assert imaging.reason_category(e.reason) == "unsupported TIFF" and "choose channels" in e.reason
    if imaging.importlib.util.find_spec("tifffile"):
        assert e.reason == "unsupported TIFF (C=5, uint16): choose channels"
    else:
        assert "install tifffile" in e.reason


def test_five_channel_tiff_with_chosen_channels(tmp_path):
    pytest.importorskip("tifffile")
    path = f.write_five_channel_tiff(tmp_path)
    arr = decode(path, channels=(1, 0, 4))
    assert arr.shape == (32, 40, 3)
    assert arr[0, 5, 0] < 10 and arr[-1, 5, 0] > 245  # channel 1 ramps down the rows
    assert arr[5, 0, 1] < 10 and arr[5, -1, 1] > 245  # channel 0 ramps along the columns
    assert set(np.unique(arr[:, :, 2])) == {0, 255}  # channel 4: checkerboard
    assert decode_resized(path, 16, channels=(1, 0, 4)).shape == (16, 16, 3)
    with pytest.raises(DecodeError, match="channel 7 out of range"):
        decode(path, channels=(7, 0, 0))


def test_page_stack_tiff_pages_are_channels(tmp_path):
    path = f.write_page_stack_tiff(tmp_path)
    assert read_info(path, channels=(0, 1, 2)).frames == 3
    arr = decode(path, channels=(2, 1, 0))
    assert arr[5, 0, 0] > 245 and arr[5, -1, 0] < 10  # page 2 ramps against x
    assert arr[0, 5, 1] < 10 and arr[-1, 5, 1] > 245  # page 1 ramps down
    assert arr[5, 0, 2] < 10 and arr[5, -1, 2] > 245  # page 0 ramps along x
    with pytest.raises(DecodeError, match="channel 3 out of range"):
        decode(path, channels=(3, 0, 0))
    red = f.write_image(tmp_path, "red.png", f.RED)  # images with an RGB reading ignore channels
    assert np.array_equal(decode(red, channels=(2, 1, 0)), decode(red))


def test_to_rgb_on_open_pillow_images():
    rgba = Image.new("RGBA", (16, 16), (0, 0, 0, 0))
    assert close(imaging.to_rgb(rgba)[0, 0], (255, 255, 255), 0)
    assert imaging.to_rgb(Image.new("L", (16, 8), 9)).shape == (8, 16, 3)
    with pytest.raises(DecodeError, match="choose channels"):
        imaging.to_rgb(Image.new("F", (16, 8), 0.5))
    assert imaging.to_rgb(Image.new("F", (16, 8), 0.5), channels=(0, 0, 0)).shape == (8, 16, 3)


def test_exif_6_jpeg_is_upright_everywhere(tmp_path):
    path = f.write_exif_jpeg(tmp_path)  # stored 64 x 32, left red / right blue
    info = read_info(path)
    assert (info.width, info.height) == (32, 64) and decode(path).shape == (64, 32, 3)
    thumb = decode_resized(path, 16, square=False)
    assert thumb.shape == (32, 16, 3)
    assert close(thumb[4, 8], f.RED) and close(thumb[28, 8], f.BLUE)
    crop = decode_resized(path, 16)  # centre square straddles the colour edge: red above blue
    assert close(crop[1, 8], f.RED) and close(crop[14, 8], f.BLUE)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_matches_exif_transpose(tmp_path, orientation):
    rng = np.random.default_rng(orientation)
    img = Image.fromarray(rng.integers(0, 256, (12, 20, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}.png"
    img.save(path, exif=exif)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    assert np.array_equal(decode(path), expected)


@pytest.mark.parametrize("writer", [f.write_animated_gif, f.write_apng], ids=["gif", "apng"])
def test_animated_gives_first_frame(tmp_path, writer):
    path = writer(tmp_path)
    assert read_info(path).frames == 3
    assert close(decode_resized(path, 8)[4, 4], f.RED, 10)
    assert close(imaging.to_rgb(Image.open(path))[12, 12], f.RED, 10)


def test_small_images_upsample_and_strips_crop(tmp_path):
    path = f.write_image(tmp_path, "eight.png", f.RED, size=(imaging.MIN_SIDE, imaging.MIN_SIDE))
    arr = decode_resized(path, 64)
    assert arr.shape == (64, 64, 3) and close(arr[32, 32], f.RED, 2)
    path = f.write_image(tmp_path, "strip.png", f.RED, size=(10, 3000))
    assert decode_resized(path, 32).shape == (32, 32, 3)
    assert decode_resized(path, 32, square=False).shape == (32 * 16, 32, 3)  # capped at 16:1
    with pytest.raises(ValueError):
        decode_resized(path, 0)
    with pytest.raises(DecodeError, match=r"too small \(1x10000 px\)"):
        decode_resized(f.write_thin(tmp_path), 32)


def gradient(w: int, h: int) -> Image.Image:
    x = np.linspace(0, 255, w)[None, :]
    y = np.linspace(0, 255, h)[:, None]
    return Image.fromarray(np.stack([x + 0 * y, y + 0 * x, (x + y) / 2], 2).astype(np.uint8))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_resized_matches_full_decode_then_resize(tmp_path, fmt):
    path = tmp_path / f"big.{fmt.lower()}"
    gradient(1600, 1200).save(path, format=fmt)
    small = decode_resized(path, 64).astype(int)
    full = Image.fromarray(decode(path))
    ref = np.asarray(full.resize((64, 64), Image.Resampling.LANCZOS, box=(200, 0, 1400, 1200)))
    assert np.abs(small - ref.astype(int)).mean() < 3


def test_permission_error_is_unreadable(tmp_path, monkeypatch):
    path = f.write_image(tmp_path, "locked.jpg")
    real_open = builtins.open

    def deny(file, *args, **kwargs):
        if os.fspath(file) == os.fspath(path):
            raise PermissionError(13, "Permission denied", os.fspath(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", deny)
    e = reason(path)
    assert e.reason == "unreadable (PermissionError)" and e.error == "PermissionError"


def test_missing_file_and_folder_are_unreadable(tmp_path):
    assert reason(tmp_path / "gone.jpg").reason == "unreadable (FileNotFoundError)"
    assert reason(tmp_path).reason == "unreadable (IsADirectoryError)"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_fifo_is_never_opened(tmp_path):
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    assert reason(fifo).reason == "not an image (special file)"  # would block if opened


def test_odd_names_round_trip(tmp_path):
    for path in f.write_odd_names(tmp_path):
        assert decode(path).shape == (32, 32, 3)
        assert decode(Path(str(path))).shape == (32, 32, 3)
        assert decode_resized(os.fspath(path), 8).shape == (8, 8, 3)


def _seed_bytes(fmt: str) -> bytes:
    buf = io.BytesIO()
    gradient(24, 16).save(buf, format=fmt)
    return buf.getvalue()


SEEDS = [_seed_bytes("PNG"), _seed_bytes("JPEG"), _seed_bytes("GIF")]


FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))


def _decode_or_reason(tmp_path_factory, data: bytes) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "x.img"
    path.write_bytes(data)
    for call in (decode, lambda p: decode_resized(p, 16), read_info):
        try:
            out = call(path)
        except DecodeError as e:
            assert e.reason
            continue
        if isinstance(out, np.ndarray):
            assert out.ndim == 3 and out.shape[2] == 3 and out.dtype == np.uint8


@FUZZ
@given(data=st.binary(max_size=2048))
def test_fuzz_random_bytes(tmp_path_factory, data):
    _decode_or_reason(tmp_path_factory, data)


@FUZZ
@given(
    seed=st.sampled_from(range(len(SEEDS))),
    edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=8),
    cut=st.one_of(st.none(), st.integers(0, 10_000)),
)
def test_fuzz_mutated_images(tmp_path_factory, seed, edits, cut):
    data = bytearray(SEEDS[seed])
    for pos, value in edits:
        data[pos % len(data)] = value
    _decode_or_reason(tmp_path_factory, bytes(data[:cut] if cut is not None else data))
