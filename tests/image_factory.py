"""Writers for every good, bad and odd image file the catalogue names (RELIABILITY.md 1-14).

Each ``write_*`` function writes one file (or a few) into ``folder`` and returns its path(s).
Everything is generated from code with Pillow and numpy; TIFF and PNG variants Pillow cannot
write (5 samples, float32, 16-bit RGB, bogus headers) come from the tiny writers below, so
the files exist even where ``tifffile`` is not installed. :func:`build_torture_folder` writes
them all, for scan and end-to-end tests.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

RED = (255, 0, 0)
GREEN = (0, 255, 0)
BLUE = (0, 0, 255)

_SHORT, _LONG = 3, 4  # TIFF field types


def png_bytes(
    width: int, height: int, depth: int, colour_type: int, raw: bytes, *, idat: bytes | None = None
) -> bytes:
    """A PNG whose one IDAT holds ``raw`` (row-filtered) deflated, or ``idat`` as is; CRCs right."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw) if idat is None else idat)
        + chunk(b"IEND", b"")
    )


def tiff_bytes(pages: list[tuple[dict[int, tuple[int, list[int]]], bytes]], bo: str = "<") -> bytes:
    """A TIFF from (tags, pixel bytes) pages; -1 in tag 273/324 becomes the data's offset."""
    out = bytearray(b"II*\x00" if bo == "<" else b"MM\x00*") + bytes(4)
    next_ptr = 4
    for tags, data in pages:
        data_offset = len(out)
        out += data + b"\x00" * (len(data) % 2)
        ifd_offset = len(out)
        out[next_ptr : next_ptr + 4] = struct.pack(bo + "I", ifd_offset)
        extra_offset = ifd_offset + 2 + 12 * len(tags) + 4
        entries, extra = bytearray(struct.pack(bo + "H", len(tags))), bytearray()
        for tag in sorted(tags):
            kind, values = tags[tag]
            values = [data_offset if v == -1 else v for v in values]
            packed = struct.pack(bo + ("H" if kind == _SHORT else "I") * len(values), *values)
            if len(packed) <= 4:
                field = packed + bytes(4 - len(packed))
            else:
                field = struct.pack(bo + "I", extra_offset + len(extra))
                extra += packed
            entries += struct.pack(bo + "HHI", tag, kind, len(values)) + field
        next_ptr = ifd_offset + len(entries)
        out += entries + bytes(4) + extra
    return bytes(out)


def tiff_page(arr: np.ndarray, bo: str = "<") -> tuple[dict[int, tuple[int, list[int]]], bytes]:
    """One uncompressed single-strip page; (H, W) or (H, W, S), unsigned ints or float32."""
    h, w = arr.shape[:2]
    spp = 1 if arr.ndim == 2 else arr.shape[2]
    bits = arr.dtype.itemsize * 8
    sample_format = 3 if arr.dtype.kind == "f" else 1
    photometric = 2 if spp in (3, 4) else 1
    data = np.ascontiguousarray(arr.astype(arr.dtype.newbyteorder(bo))).tobytes()
    tags = {
        256: (_LONG, [w]),
        257: (_LONG, [h]),
        258: (_SHORT, [bits] * spp),
        259: (_SHORT, [1]),
        262: (_SHORT, [photometric]),
        273: (_LONG, [-1]),
        277: (_SHORT, [spp]),
        278: (_LONG, [h]),
        279: (_LONG, [len(data)]),
        284: (_SHORT, [1]),
        339: (_SHORT, [sample_format] * spp),
    }
    extra = spp - (3 if photometric == 2 else 1)
    if extra > 0:
        tags[338] = (_SHORT, [0] * extra)  # unspecified extra samples, as microscopes write them
    return tags, data


def _write(folder: Path, name: str, data: bytes) -> Path:
    path = Path(folder) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _save(img: Image.Image, folder: Path, name: str, **kwargs: object) -> Path:
    path = _write(folder, name, b"")
    img.save(path, **kwargs)
    return path


def halves(
    size: tuple[int, int] = (64, 32), left=RED, right=BLUE, mode: str = "RGB"
) -> Image.Image:
    """Left half one colour, right half another: orientation and colour are both checkable."""
    img = Image.new(mode, size, left)
    img.paste(Image.new(mode, (size[0] - size[0] // 2, size[1]), right), (size[0] // 2, 0))
    return img


def write_image(folder: Path, name: str, colour=RED, size=(32, 32), fmt: str | None = None) -> Path:
    """A plain solid-colour RGB image; the format follows the extension unless ``fmt``."""
    return _save(Image.new("RGB", size, colour), folder, name, format=fmt)


def write_zero_byte(folder: Path, name: str = "empty.jpg") -> Path:
    return _write(folder, name, b"")


def write_text_as_png(folder: Path, name: str = "notes.png") -> Path:
    return _write(folder, name, b"This is a text file, not a picture.\n" * 4)


def write_png_as_jpg(folder: Path, name: str = "actually_png.jpg") -> Path:
    return write_image(folder, name, GREEN, fmt="PNG")


def write_upper_ext(folder: Path, name: str = "UPPER.JPG") -> Path:
    return write_image(folder, name, BLUE, fmt="JPEG")


def write_truncated_jpeg(folder: Path, name: str = "truncated.jpg") -> Path:
    noise = np.random.default_rng(0).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    full = _save(Image.fromarray(noise), folder, name, format="JPEG").read_bytes()  # no runs
    return _write(folder, name, full[: len(full) // 2])


def write_broken_zlib_png(folder: Path, name: str = "broken_zlib.png") -> Path:
    """Valid chunks and CRCs around an IDAT whose deflate stream is garbage past its header."""
    rng = np.random.default_rng(1)
    rows = rng.integers(0, 256, (32, 1 + 32 * 3), dtype=np.uint8)
    rows[:, 0] = 0  # filter type None
    deflated = zlib.compress(rows.tobytes())
    garbage = b"\xff" * 40  # a reserved block type right after the 2-byte zlib header
    return _write(
        folder, name, png_bytes(32, 32, 8, 2, b"", idat=deflated[:2] + garbage + deflated[42:])
    )


def write_bomb_png(folder: Path, name: str = "bomb.png", size=(20000, 20000)) -> Path:
    """A 100-byte PNG whose header claims ``size`` (the data would never fill it)."""
    return _write(folder, name, png_bytes(size[0], size[1], 8, 2, b"\x00" * 16))


def write_whole_slide_tiff(folder: Path, name: str = "slide.tif", size=(100_000, 80_000)) -> Path:
    """A tiled, pyramidal TIFF header claiming a scanner-sized slide; the tiles are dummies."""
    tile = 512
    pages = []
    for level in (1, 16):
        w, h = size[0] // level, size[1] // level
        n = -(-w // tile) * -(-h // tile)
        tags = {
            256: (_LONG, [w]),
            257: (_LONG, [h]),
            258: (_SHORT, [8, 8, 8]),
            259: (_SHORT, [1]),
            262: (_SHORT, [2]),
            277: (_SHORT, [3]),
            284: (_SHORT, [1]),
            322: (_LONG, [tile]),
            323: (_LONG, [tile]),
            324: (_LONG, [-1] * n),
            325: (_LONG, [tile * tile * 3] * n),
        }
        pages.append((tags, b"\x00" * 16))
    return _write(folder, name, tiff_bytes(pages))


def write_tiny(folder: Path, name: str = "one_pixel.png", size=(1, 1)) -> Path:
    return write_image(folder, name, RED, size=size)


def write_thin(folder: Path, name: str = "thin.png", size=(1, 10000)) -> Path:
    return write_image(folder, name, RED, size=size)


def ramp16(shape=(256, 256), top: int = 65535) -> np.ndarray:
    return np.linspace(0, top, shape[0] * shape[1]).reshape(shape).round().astype(np.uint16)


def write_grey16_png(folder: Path, name: str = "grey16.png", top: int = 65535) -> Path:
    return _save(Image.fromarray(ramp16(top=top)), folder, name)


def write_12bit_in_16(folder: Path, name: str = "camera12.png") -> Path:
    """A 12-bit sensor image stored in 16 bits: values 0-4095 only."""
    return write_grey16_png(folder, name, top=4095)


def write_grey16_tiff(folder: Path, name: str = "grey16.tif", bo: str = "<") -> Path:
    return _write(folder, name, tiff_bytes([tiff_page(ramp16(), bo)], bo))


def write_rgb16_png(folder: Path, name: str = "rgb16.png", top: int = 4095) -> Path:
    """16-bit RGB (Pillow cannot write it): red ramp, constant green, no blue."""
    h = w = 64
    arr = np.zeros((h, w, 3), np.uint16)
    arr[:, :, 0] = ramp16((h, w), top)
    arr[:, :, 1] = top // 2
    rows = np.concatenate(
        [np.zeros((h, 1), np.uint8), arr.astype(">u2").view(np.uint8).reshape(h, -1)], 1
    )
    return _write(folder, name, png_bytes(w, h, 16, 2, rows.tobytes()))


def write_float32_tiff(folder: Path, name: str = "float32.tif") -> Path:
    arr = np.linspace(-1.0, 3.0, 64 * 48, dtype=np.float32).reshape(48, 64)
    return _write(folder, name, tiff_bytes([tiff_page(arr)]))


def pattern(k: int, shape=(32, 40), top: int = 4000) -> np.ndarray:
    """Plane k of a multi-channel fixture, told apart by direction.

    0 ramps along x, 1 along y, 2 against x, 3 against y, 4 is a checkerboard; offsets of
    100 * k make the raw values differ too.
    """
    h, w = shape
    x = np.broadcast_to(np.linspace(0, top, w), shape)
    y = np.broadcast_to(np.linspace(0, top, h)[:, None], shape)
    checker = (np.indices(shape).sum(0) % 2) * top
    planes = (x, y, top - x, top - y, checker)
    return (planes[k % 5] + 100 * k).round().astype(np.uint16)


def write_five_channel_tiff(folder: Path, name: str = "five_channel.tif") -> Path:
    """Five samples per pixel (contiguous, :func:`pattern` planes): Pillow cannot map it."""
    planes = np.stack([pattern(k, (32, 40)) for k in range(5)], axis=2)
    return _write(folder, name, tiff_bytes([tiff_page(planes)]))


def write_page_stack_tiff(folder: Path, name: str = "stack.tif", pages: int = 3) -> Path:
    """Same-size 16-bit grey pages, as microscopes store channels: page k is :func:`pattern` k."""
    return _write(folder, name, tiff_bytes([tiff_page(pattern(k, (24, 32))) for k in range(pages)]))


def write_cmyk_jpeg(folder: Path, name: str = "cmyk.jpg") -> Path:
    """Pillow writes CMYK JPEG inverted with an Adobe marker, as Photoshop does; pure red."""
    return _save(Image.new("CMYK", (32, 32), (0, 255, 255, 0)), folder, name, quality=95)


def write_palette_transparent_png(folder: Path, name: str = "palette_trns.png") -> Path:
    """Left half transparent (index 0), right half opaque red (index 1)."""
    img = Image.new("P", (32, 16), 0)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    img.paste(1, (16, 0, 32, 16))
    return _save(img, folder, name, transparency=0)


def write_la_png(folder: Path, name: str = "la.png") -> Path:
    """Grey 0 everywhere; left half transparent, right half opaque."""
    img = Image.new("LA", (32, 16), (0, 0))
    img.paste((0, 255), (16, 0, 32, 16))
    return _save(img, folder, name)


def write_rgba_png(folder: Path, name: str = "rgba.png") -> Path:
    """Left: transparent red; middle: opaque blue; right: half-transparent black."""
    img = Image.new("RGBA", (48, 16), (255, 0, 0, 0))
    img.paste((0, 0, 255, 255), (16, 0, 32, 16))
    img.paste((0, 0, 0, 128), (32, 0, 48, 16))
    return _save(img, folder, name)


def write_1bit_png(folder: Path, name: str = "bilevel.png") -> Path:
    return _save(halves((32, 16), 0, 1, mode="1"), folder, name)


def write_grey_png(folder: Path, name: str = "grey.png") -> Path:
    return _save(halves((32, 16), 50, 200, mode="L"), folder, name)


def write_exif_jpeg(folder: Path, name: str = "exif6.jpg", orientation: int = 6) -> Path:
    """64 x 32 stored, left red / right blue, EXIF-rotated (6: displayed 32 x 64, red on top)."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    return _save(halves(), folder, name, exif=exif, quality=95)


def write_animated_gif(folder: Path, name: str = "animated.gif") -> Path:
    frames = [Image.new("RGB", (24, 24), c) for c in (RED, GREEN, BLUE)]
    return _save(
        frames[0], folder, name, save_all=True, append_images=frames[1:], duration=100, loop=0
    )


def write_apng(folder: Path, name: str = "animated.png") -> Path:
    frames = [Image.new("RGB", (24, 24), c) for c in (RED, GREEN, BLUE)]
    return _save(frames[0], folder, name, save_all=True, append_images=frames[1:], duration=100)


ODD_NAMES = (
    "ünïcødé 画像.png",
    "with space.jpg",
    "hash#1.png",
    "l" + "o" * 200 + "ng.jpg",
)


def write_odd_names(folder: Path) -> list[Path]:
    return [
        write_image(folder, name, GREEN, fmt="PNG" if name.endswith("png") else "JPEG")
        for name in ODD_NAMES
    ]


JUNK_NAMES = (".DS_Store", "._x.jpg", "Thumbs.db", "desktop.ini")


def write_os_junk(folder: Path) -> list[Path]:
    """Finder, AppleDouble and Explorer droppings (AppleDouble bytes are not a JPEG)."""
    return [_write(folder, name, b"\x00\x05\x16\x07junk" * 8) for name in JUNK_NAMES]


def write_broken_symlink(folder: Path, name: str = "broken_link.jpg") -> Path:
    path = Path(folder) / name
    os.symlink(Path(folder) / "does-not-exist.jpg", path)
    return path


def write_symlink_loop(folder: Path, name: str = "loop") -> Path:
    """A folder symlink pointing at its own parent folder."""
    path = Path(folder) / name
    os.symlink(Path(folder).resolve(), path, target_is_directory=True)
    return path


def write_self_symlink(folder: Path, name: str = "self_link.jpg") -> Path:
    """A symlink to itself: stat fails with ELOOP."""
    path = Path(folder) / name
    os.symlink(name, path)
    return path


# name -> (writer, expected skip category or None when the file must decode)
CATALOGUE: dict[str, tuple[Callable[[Path], Path], str | None]] = {
    "empty.jpg": (write_zero_byte, "empty file"),
    "notes.png": (write_text_as_png, "not an image"),
    "actually_png.jpg": (write_png_as_jpg, None),
    "UPPER.JPG": (write_upper_ext, None),
    "truncated.jpg": (write_truncated_jpeg, "truncated"),
    "broken_zlib.png": (write_broken_zlib_png, "truncated"),
    "bomb.png": (write_bomb_png, "too large"),
    "slide.tif": (write_whole_slide_tiff, "whole-slide image"),
    "grey16.png": (write_grey16_png, None),
    "camera12.png": (write_12bit_in_16, None),
    "grey16.tif": (write_grey16_tiff, None),
    "grey16be.tif": (lambda f: write_grey16_tiff(f, "grey16be.tif", ">"), None),
    "rgb16.png": (write_rgb16_png, None),
    "float32.tif": (write_float32_tiff, "unsupported TIFF"),
    "five_channel.tif": (write_five_channel_tiff, "unsupported TIFF"),
    "stack.tif": (write_page_stack_tiff, "unsupported TIFF"),
    "cmyk.jpg": (write_cmyk_jpeg, None),
    "palette_trns.png": (write_palette_transparent_png, None),
    "la.png": (write_la_png, None),
    "rgba.png": (write_rgba_png, None),
    "bilevel.png": (write_1bit_png, None),
    "grey.png": (write_grey_png, None),
    "exif6.jpg": (write_exif_jpeg, None),
    "animated.gif": (write_animated_gif, None),
    "animated.png": (write_apng, None),
    "one_pixel.png": (write_tiny, "too small"),
    "thin.png": (write_thin, "too small"),
}


def build_torture_folder(folder: Path, *, links: bool = True) -> dict[str, str | None]:
    """Write the whole catalogue, odd names, OS junk and (optionally) bad symlinks.

    Returns:
        Relative path -> expected skip category, or None for files that must decode.
        OS junk is not listed: it is ignored, not skipped.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    expected: dict[str, str | None] = {}
    for name, (writer, category) in CATALOGUE.items():
        writer(folder)
        expected[name] = category
    for path in write_odd_names(folder):
        expected[path.name] = None
    write_os_junk(folder)
    if links:
        write_broken_symlink(folder)
        expected["broken_link.jpg"] = "broken symlink"
        sub = folder / "sub"
        sub.mkdir(exist_ok=True)
        write_image(sub, "inside.png", BLUE)
        expected["sub/inside.png"] = None
        write_symlink_loop(sub)
        expected["sub/loop"] = "symlink loop"
    return expected
