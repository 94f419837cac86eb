"""Robust image decoding: every file yields RGB pixels or a reason. numpy + Pillow only.

Training cache, thumbnails and the exported tool all call :func:`decode_resized`, so a model
sees the pixels the user saw. Files are judged by their bytes, not their extension. Policy:
EXIF orientation applied; animated or multi-page: first frame; grey and 1-bit replicated to 3
channels; alpha (RGBA, LA, PA, palette or colour-key) composited on fixed white; CMYK (Adobe's
inverted JPEG CMYK too) and YCbCr converted by Pillow; 16/32-bit integer grey scaled to 8 bit by
the image's own 0.5 / 99.5 % percentiles (a 12-bit camera image in 16 bits keeps its levels,
not clipped to white), 16-bit RGB likewise with one pair for all channels (Pillow gives 16-bit
RGB PNG as its high byte; tifffile reads RGB TIFF at full depth). No natural RGB reading
(float32, > 4 channels, a stack of same-size grey pages): "unsupported TIFF (C=5, float32):
choose channels" unless ``channels`` names three channel (page) indices, each then scaled by its
own percentiles (stains differ in brightness); ordinary images ignore ``channels``. Limits are
per call: Pillow's global MAX_IMAGE_PIXELS and LOAD_TRUNCATED_IMAGES stay untouched. A
whole-slide tile address (``slide.svs#0:x:y:side``, see :mod:`sslstudio.imaging.slides`) reads as an
image.
"""

from __future__ import annotations

import importlib.util
import os
import stat
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import cast

import numpy as np
from PIL import Image, UnidentifiedImageError

from sslstudio.imaging import slides
from sslstudio.imaging.errors import DecodeError  # noqa: F401  (part of this API)
from sslstudio.imaging.filetypes import is_ignored_name, sniff_format  # noqa: F401  (part of this API)

Channels = tuple[int, int, int]
PathLike = str | os.PathLike[str]

MAX_PIXELS: int = 178_956_970 // 2  # Pillow's own warning threshold, enforced by us per call
MIN_SIDE: int = 8

_PIL_FORMAT = {name: name.upper() for name in ("jpeg", "png", "tiff", "bmp", "webp", "gif")}
_DEEP_GREY = ("I;16", "I;16L", "I;16B", "I;16N")
_PLANE_DTYPE = {"L": "uint8", "I": "int32", "F": "float32"} | dict.fromkeys(_DEEP_GREY, "uint16")
_TRUNCATION_WORDS = ("truncat", "broken data stream", "eof", "premature end", "not enough data")
_OPEN_LOCK = threading.Lock()  # catch_warnings swaps process-global state: one opener at a time

# EXIF orientation -> (quarter turns anticlockwise, then mirror left-right), as exif_transpose.
_ORIENT = {1: (0, 0), 2: (0, 1), 3: (2, 0), 4: (2, 1), 5: (3, 1), 6: (3, 0), 7: (1, 1), 8: (1, 0)}


def reason_category(reason: str) -> str:
    """'too large (20000x20000 px)' -> 'too large'; 'whole-slide image: …' -> 'whole-slide image'.

    Categories: empty file, not an image, unreadable, truncated, corrupt, too large, too small,
    whole-slide image, unsupported TIFF, unsupported colour mode.
    """
    cuts = [i for i in (reason.find(" ("), reason.find(":")) if i >= 0]
    return reason[: min(cuts)] if cuts else reason


@dataclass(frozen=True)
class ImageInfo:
    """Header facts; width and height as displayed (after EXIF orientation)."""

    width: int
    height: int
    format: str
    mode: str
    frames: int


def read_info(
    path: PathLike,
    *,
    channels: Channels | None = None,
    max_pixels: int = MAX_PIXELS,
    verify: bool = False,
) -> ImageInfo:
    """Header only (cheap; DecodeError for what it shows); ``verify``: decode fully too."""
    return _process(path, channels, max_pixels, pixels=verify)[0]


def decode(
    path: PathLike, *, channels: Channels | None = None, max_pixels: int = MAX_PIXELS
) -> np.ndarray:
    """Upright H x W x 3 uint8 C-contiguous RGB; bad content raises DecodeError, nothing else."""
    return cast(np.ndarray, _process(path, channels, max_pixels)[1])


def decode_resized(
    path: PathLike,
    size: int,
    *,
    square: bool = True,
    channels: Channels | None = None,
    max_pixels: int = MAX_PIXELS,
) -> np.ndarray:
    """Shorter side to ``size``, centre square (else aspect kept); big files are cheap (see
    code)."""
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    return cast(np.ndarray, _process(path, channels, max_pixels, size, square)[1])


def to_rgb(img: Image.Image, channels: Channels | None = None) -> np.ndarray:
    """Apply the channel policy (module docstring) to an open Pillow image: H x W x 3 uint8."""
    with _guard():
        img.seek(0)  # animated: the first frame
        fmt = (img.format or "").lower()
        rgb = _to_rgb_array(img, _is_deep(img, fmt, b""), _stack_shape(img, fmt), fmt, channels)
        return _finish(rgb, _orientation(img))


def _process(
    path: PathLike,
    channels: Channels | None,
    max_pixels: int,
    size: int = 0,
    square: bool = True,
    pixels: bool = True,
) -> tuple[ImageInfo, np.ndarray | None]:
    tile = slides.pixels(path)  # a whole-slide tile address, else None
    if tile is not None:
        info = ImageInfo(tile.shape[1], tile.shape[0], "tile", "RGB", 1)
        return info, _finish(_resize(tile, size, square)) if pixels else None
    with _guard(), _opened(path, max_pixels) as (im, fmt, head):
        deep = im is not None and _is_deep(im, fmt, head)
        if im is None or (deep and fmt == "tiff" and importlib.util.find_spec("tifffile")):
            info, rgb = _via_tifffile(path, channels, max_pixels, pixels)
            return info, None if rgb is None else _finish(_resize(rgb, size, square))
        stack = _stack_shape(im, fmt)
        if stack is not None and channels is None:
            raise _choose_channels(fmt, stack)
        (w, h), mode, frames = im.size, im.mode, stack[0] if stack else getattr(im, "n_frames", 1)
        if pixels:
            if size and fmt == "jpeg":
                im.draft(None, (size, size))  # DCT-domain downscale; both sides stay >= size
            im.load()
        # Only after load: PNG's getexif() loads by itself and would hide a truncation from us.
        orientation = _orientation(im) if pixels or fmt != "png" or "exif" in im.info else 1
        info = ImageInfo(*((w, h) if orientation < 5 else (h, w)), fmt, mode, frames)
        if not pixels:
            return info, None
        # JPEG was DCT-scaled above; other big images are box-reduced in their own mode here.
        small = _shrink(im, size) if size and stack is None else im
        rgb = _to_rgb_array(small, deep, stack, fmt, channels)
        return info, _finish(_resize(rgb, size, square), orientation)


@contextmanager
def _guard() -> Iterator[None]:
    """Turn whatever Pillow or tifffile raises on hostile bytes into a DecodeError."""
    try:
        yield
    except DecodeError:
        raise
    except (MemoryError, Image.DecompressionBombError) as e:  # GIF checks frames itself, too
        raise DecodeError(f"too large ({type(e).__name__})", error=type(e).__name__) from e
    except Exception as e:  # the contract is pixels or a reason, whatever the bytes hold
        name = type(e).__name__
        # File-system errors carry an errno; Pillow's decoder errors are bare OSErrors.
        if isinstance(e, OSError) and e.errno is not None:
            raise DecodeError(f"unreadable ({name})", error=name) from e
        detail = " ".join(str(e).split())[:100] or name
        kind = "truncated" if any(w in detail.lower() for w in _TRUNCATION_WORDS) else "corrupt"
        raise DecodeError(f"{kind} ({detail})", error=name) from e


@contextmanager
def _opened(path: PathLike, max_pixels: int) -> Iterator[tuple[Image.Image | None, str, bytes]]:
    """Yield (image, format, first bytes) with the size checked; image None: for tifffile."""
    name = os.fspath(path)
    st = os.stat(name)
    if stat.S_ISDIR(st.st_mode):
        raise DecodeError("unreadable (IsADirectoryError)", error="IsADirectoryError")
    if not stat.S_ISREG(st.st_mode):
        raise DecodeError("not an image (special file)")  # reading a FIFO would block forever
    if st.st_size == 0:
        raise DecodeError("empty file")
    with open(name, "rb") as fp:
        head = fp.read(32)
        fmt = sniff_format(head)
        if fmt is None:
            raise DecodeError("not an image")
        try:
            with _OPEN_LOCK, warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                im: Image.Image | None = Image.open(fp, formats=[_PIL_FORMAT[fmt]])
        except Image.DecompressionBombError:
            # Pillow refuses before telling the size; its plugin alone (no global cap) lets the
            # report name W x H and honours a caller's larger max_pixels.
            fp.seek(0)
            im = Image.OPEN[_PIL_FORMAT[fmt]][0](fp, name)
        except UnidentifiedImageError as e:
            im = None  # TIFF with > 4 samples or odd layouts: tifffile may read what Pillow cannot
            if fmt != "tiff":
                raise DecodeError(f"corrupt (bad {fmt} header)", error=type(e).__name__) from e
        try:
            if im is not None:
                tags = getattr(im, "tag_v2", {})
                # Tiled, pyramidal or Aperio: the layouts of whole-slide scanners.
                slide = fmt == "tiff" and (
                    322 in tags or str(tags.get(270, "")).startswith("Aperio") or im.n_frames > 1
                )
                _check_size(*im.size, max_pixels, slide=slide)
            yield im, fmt, head
        finally:
            if im is not None:
                im.close()


def _check_size(w: int, h: int, max_pixels: int, *, slide: bool) -> None:
    if w * h > max_pixels:
        if slide:
            raise DecodeError(f"whole-slide image: needs tiling ({w}x{h} px)")
        raise DecodeError(f"too large ({w}x{h} px)")
    if min(w, h) < MIN_SIDE:
        raise DecodeError(f"too small ({w}x{h} px)")


def _orientation(im: Image.Image) -> int:
    try:
        value = im.getexif().get(0x0112, 1)
    except Exception:  # a damaged EXIF block should not cost the picture: show it as stored
        return 1
    return value if value in _ORIENT else 1


def _finish(arr: np.ndarray, orientation: int = 1) -> np.ndarray:
    """Upright, C-contiguous and writable (torch.from_numpy warns on read-only arrays)."""
    turns, mirror = _ORIENT[orientation]
    arr = np.rot90(arr, turns)[:, ::-1] if mirror else np.rot90(arr, turns)
    return arr if arr.flags.c_contiguous and arr.flags.writeable else np.array(arr, order="C")


def _is_deep(im: Image.Image, fmt: str, head: bytes) -> bool:
    """16-bit RGB (PNG: IHDR depth 16, colour type 2), which Pillow hands over as its high byte."""
    bits = tuple(getattr(im, "tag_v2", {}).get(258, ())) if fmt == "tiff" else ()
    return (fmt == "png" and head[24:26] == b"\x10\x02") or bits == (16, 16, 16)


def _stack_shape(im: Image.Image, fmt: str) -> tuple[int, str] | None:
    """(C, dtype) for data with no natural RGB reading; None for ordinary images."""
    dtype, first = _PLANE_DTYPE.get(im.mode), im.size
    if dtype is not None and fmt == "tiff" and im.n_frames > 1:
        im.seek(1)
        second = im.size
        im.seek(0)
        if second == first:
            return im.n_frames, dtype
    return (1, "float32") if im.mode == "F" else None


def _choose_channels(fmt: str, stack: tuple[int, str]) -> DecodeError:
    return DecodeError(f"unsupported {fmt.upper()} (C={stack[0]}, {stack[1]}): choose channels")


def _pick_channels(
    src: Image.Image | np.ndarray, stack: tuple[int, str], fmt: str, channels: Channels | None
) -> np.ndarray:
    """Three chosen planes of a H x W x C array or of a page stack, each with its own stretch."""
    if channels is None:
        raise _choose_channels(fmt, stack)

    def plane(k: int) -> np.ndarray:
        if isinstance(src, np.ndarray):
            return src[:, :, k]
        src.seek(k)  # a page of a stack (0 for a single float image)
        return np.asarray(src)

    scaled: dict[int, np.ndarray] = {}
    for k in channels:
        if not 0 <= k < stack[0]:
            raise DecodeError(f"unsupported {fmt.upper()} (C={stack[0]}): channel {k} out of range")
        if k not in scaled:
            scaled[k] = _stretch(plane(k))
    return np.stack([scaled[k] for k in channels], axis=2)


def _stretch(arr: np.ndarray) -> np.ndarray:
    """To uint8 by the values' own 0.5 / 99.5 % percentiles, one pair for all channels."""
    flat = arr.reshape(-1)
    sample = flat[:: max(1, flat.size >> 20)].astype(np.float64)  # ~1M values: < 0.01 % error
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return np.zeros(arr.shape, np.uint8)
    lo, hi = np.percentile(sample, (0.5, 99.5))
    if hi <= lo:  # near-flat: the extremes; a flat image comes out black
        lo, hi = sample.min(), max(sample.max(), sample.min() + 1)
    out = (arr.astype(np.float32) - np.float32(lo)) * np.float32(255.0 / (hi - lo))
    return np.rint(np.clip(np.nan_to_num(out, copy=False, nan=0.0), 0, 255)).astype(np.uint8)


def _to_rgb_array(
    im: Image.Image, deep: bool, stack: tuple[int, str] | None, fmt: str, channels: Channels | None
) -> np.ndarray:
    if stack is not None:
        return _pick_channels(im, stack, fmt, channels)
    mode = im.mode
    if mode == "RGB":
        return _stretch(np.asarray(im)) if deep else np.asarray(im)
    if mode in _PLANE_DTYPE or mode == "1":  # grey; 16/32-bit stretched (float: _pick_channels)
        grey = np.asarray(im.convert("L")) if mode in ("L", "1") else _stretch(np.asarray(im))
        return np.repeat(grey[:, :, None], 3, axis=2)
    try:
        if not im.has_transparency_data:
            return np.asarray(im.convert("RGB"))
        rgba = np.asarray(im.convert("RGBA")).astype(np.uint16)
    except ValueError as e:
        raise DecodeError(f"unsupported colour mode ({mode})", error=type(e).__name__) from e
    alpha = rgba[:, :, 3:]
    return ((rgba[:, :, :3] * alpha + 255 * (255 - alpha) + 127) // 255).astype(np.uint8)


def _shrink(im: Image.Image, size: int) -> Image.Image:
    """Box-reduce big images in their own mode, leaving >= 2x for the final bicubic resample."""
    factor = min(im.size) // (2 * size)
    if factor < 2:
        return im
    if im.mode in _DEEP_GREY:
        im = im.convert("I")  # reduce() has no 16-bit kernel; 'I' keeps every level
    try:
        return im.reduce(factor)
    except ValueError:
        return im  # palette and 1-bit: resampled at full size after conversion


def _resize(rgb: np.ndarray, size: int | None, square: bool) -> np.ndarray:
    if not size:
        return rgb
    h, w = rgb.shape[:2]
    short = min(w, h)
    if square:
        bw = bh = short
        out = (size, size)
    else:
        bw, bh = min(w, 16 * short), min(h, 16 * short)  # <= 16:1: a thin strip stays small
        out = (max(size, round(bw * size / short)), max(size, round(bh * size / short)))
    box = ((w - bw) / 2, (h - bh) / 2, (w + bw) / 2, (h + bh) / 2)  # fractional: exact centre
    img = Image.fromarray(np.ascontiguousarray(rgb))
    return np.asarray(img.resize(out, Image.Resampling.BICUBIC, box=box, reducing_gap=3.0))


def _via_tifffile(
    path: PathLike, channels: Channels | None, max_pixels: int, pixels: bool
) -> tuple[ImageInfo, np.ndarray | None]:
    """TIFFs Pillow cannot map (> 4 samples…) and full-depth 16-bit RGB; no orientation tags."""
    try:
        import tifffile  # optional: microscopy users install it; the exported tool never needs it
    except ImportError as e:
        msg = "unsupported TIFF (Pillow cannot read it; install tifffile): choose channels"
        raise DecodeError(msg, error="ImportError") from e
    with tifffile.TiffFile(os.fspath(path)) as tf:
        series = tf.series[0]
        axes, shape = series.axes, tuple(series.shape)
        y, x = axes.index("Y"), axes.index("X")
        h, w = shape[y], shape[x]
        _check_size(w, h, max_pixels, slide=bool(tf.pages[0].is_tiled) or len(series.levels) > 1)
        c = int(np.prod(shape)) // max(1, w * h)
        if w * h * c > 4 * max_pixels:
            raise DecodeError(f"too large ({w}x{h} px, C={c})")
        dtype = np.dtype(series.dtype)
        natural = dtype.kind in "ui" and (c == 1 or (c == 3 and axes.endswith("S")))
        if not natural and channels is None:
            raise _choose_channels("tiff", (c, dtype.name))
        info = ImageInfo(w, h, "tiff", f"{dtype.name}x{c}", len(tf.pages))
        if not pixels:
            return info, None
        data = series.asarray()
    planes = np.moveaxis(data, (y, x), (0, 1)).reshape(h, w, c)
    if not natural:
        return info, _pick_channels(planes, (c, dtype.name), "tiff", channels)
    rgb = planes if c == 3 else np.repeat(planes, 3, axis=2)
    return info, rgb if dtype == np.uint8 else _stretch(rgb)
