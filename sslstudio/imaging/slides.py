"""Whole-slide images as tiles: ``<slide path>#<level>:<x>:<y>:<side>`` wherever a path goes.

A slide (SVS, NDPI, SCN, BIF, Philips or generic pyramidal TIFF) is far too large to decode
whole. The scan turns it into tiles: tissue is found on a low-resolution level, and every
grid square at the chosen magnification that is mostly tissue becomes an image of the index,
addressed as ``slides/case1.svs#0:20480:8192:224`` (pyramid level, level-0 x and y of the top
left corner, side in that level's pixels). :func:`sslstudio.imaging.decode.decode` reads such an
address as it reads a file, so training, thumbnails, the neighbour browser, embeddings and
the exported index all take tiles without knowing about slides.

Library: openslide-python with openslide-bin (``pip install 'sslstudio[slides]'``). The
OpenSlide C library reads every common scanner format (Aperio, Hamamatsu, Leica, Ventana,
Philips, generic tiled TIFF), is what QuPath and most pathology tools build on, and
openslide-bin ships it as a wheel for Linux, macOS and Windows, so nothing is installed by hand.
tiffslide (pure Python over tifffile and zarr) was the alternative; it reads fewer vendors.
numpy + Pillow only otherwise: this module is shared with the exported tool and stays torch-free.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from PIL import Image

from sslstudio.imaging.errors import DecodeError

SEP = "#"
_OPEN_SLIDES = 8  # handles kept open (opening an SVS costs ~10-50 ms; a read ~5 ms)


@dataclass(frozen=True)
class SlideOptions:
    """How slides become tiles.

    Attributes:
        tile_px: tile side in pixels at the target resolution.
        mpp: target resolution in micrometres per pixel (0.5 is ~20x); None: the slide's
            full resolution (level 0). A slide that does not record its pixel size is tiled
            at level 0.
        tissue_min: the share of a tile that must be tissue for it to be kept.
    """

    tile_px: int = 224
    mpp: float | None = 0.5
    tissue_min: float = 0.5

    @classmethod
    def of(cls, cfg) -> SlideOptions:
        """From a RunConfig's ``tile_px``, ``tile_mpp`` (0: full resolution), ``tile_tissue``."""
        return cls(cfg.tile_px, cfg.tile_mpp or None, getattr(cfg, "tile_tissue", 0.5))

    def __post_init__(self) -> None:
        if not 16 <= self.tile_px <= 4096:
            raise ValueError(f"tile size must be 16-4096 px, got {self.tile_px}")
        if self.mpp is not None and not 0.05 <= self.mpp <= 100:
            raise ValueError(f"tile resolution must be 0.05-100 µm/px, got {self.mpp}")
        if not 0 <= self.tissue_min <= 1:
            raise ValueError(f"tissue share must be 0-1, got {self.tissue_min}")


DEFAULT_TILING = SlideOptions()


@dataclass(frozen=True)
class TileAddress:
    slide: str
    level: int
    x: int  # level-0 pixels, top left
    y: int
    side: int  # pixels at ``level``

    def __str__(self) -> str:
        return f"{self.slide}{SEP}{self.level}:{self.x}:{self.y}:{self.side}"


# Formats whose slide is an index file plus other files OpenSlide opens through it: MIRAX
# (``x.mrxs`` beside a folder ``x/`` of Slidedat.ini, Index.dat, Data*.dat) and Hamamatsu
# VMS/VMU (an INI file naming JPEG or NGR images, a map and an optimisation file).
MULTI_FILE = (".mrxs", ".vms", ".vmu")
_VMS_GROUPS = ("Virtual Microscope Specimen", "Uncompressed Virtual Microscope Specimen")
_VMS_FILE_KEYS = ("ImageFile", "MapFile", "OptimisationFile", "MacroImage")
_INDEX_BYTES = 1 << 20  # a VMS index is a few hundred bytes; never read a huge file as one


def is_multi_file(path: str) -> bool:
    """Whether ``path`` names the index file of a multi-file slide (by its extension)."""
    return os.path.splitext(path)[1].lower() in MULTI_FILE


def companions(folder: str, name: str) -> set[str]:
    """The entries of ``folder`` that belong to the multi-file slide ``name`` there (their first
    path component): they are read through the slide, never scanned as images of their own."""
    stem, ext = os.path.splitext(name)
    ext = ext.lower()
    if ext == ".mrxs":
        return {stem}  # MIRAX keeps its data in a folder of the slide's name
    if ext not in (".vms", ".vmu"):
        return set()
    import configparser

    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # keys are case-sensitive, as OpenSlide reads them
    try:
        with open(os.path.join(folder, name), "rb") as f:
            parser.read_string(f.read(_INDEX_BYTES).decode("utf-8", "replace"))
    except (OSError, configparser.Error):
        return set()
    out = set()
    for group in _VMS_GROUPS:
        if parser.has_section(group):
            for key, value in parser.items(group):
                if key.startswith(_VMS_FILE_KEYS) and value.strip():
                    out.add(value.strip().replace("\\", "/").split("/")[0])
    return out - {name}


def owned_names(folder: str, names: list[str]) -> set[str]:
    """Of ``names`` (one folder's entries), those that are parts of a multi-file slide."""
    owned: set[str] = set()
    for name in names:
        if is_multi_file(name):
            owned |= companions(folder, name)
    return owned & set(names)


def parse_address(path: str) -> TileAddress | None:
    """The tile a path names, or None for an ordinary path (syntax only, no file access)."""
    if SEP not in path:
        return None  # the common case, first: every file path of a folder passes through here
    slide, sep, tail = path.rpartition(SEP)
    if not sep or not slide:
        return None
    parts = tail.split(":")
    if len(parts) != 4 or not all(p.isdigit() for p in parts):
        return None
    level, x, y, side = (int(p) for p in parts)
    return TileAddress(slide, level, x, y, side) if side > 0 else None


def available() -> bool:
    try:
        import openslide  # noqa: F401
    except (ImportError, OSError):  # OSError: the wheel without its C library
        return False
    return True


class _Handles:
    """A few slides kept open, least recently used closed first; OpenSlide reads are thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: OrderedDict[tuple[str, int], object] = OrderedDict()

    def get(self, path: str):
        import openslide

        key = (path, os.stat(path).st_mtime_ns)  # a replaced slide is opened afresh
        with self._lock:
            slide = self._open.pop(key, None)
            if slide is None:
                slide = openslide.OpenSlide(path)
            self._open[key] = slide
            while len(self._open) > _OPEN_SLIDES:
                self._open.popitem(last=False)[1].close()
            return slide


_HANDLES = _Handles()


def is_slide(path: str) -> bool:
    """True for a file OpenSlide reads as a multi-resolution slide (not a plain tiled TIFF)."""
    if not available():
        return False
    import openslide

    try:
        vendor = openslide.OpenSlide.detect_format(path)
        if vendor is None:
            return False
        if vendor != "generic-tiff":
            return True
        return _HANDLES.get(path).level_count > 1
    except (openslide.OpenSlideError, OSError):
        return False


def tiles(path: str, rel: str, options: SlideOptions) -> list[TileAddress]:
    """Tissue tiles of the slide at ``path``, addressed by ``rel`` (its path in the index)."""
    import openslide

    try:
        slide = _HANDLES.get(path)
        w0, h0 = slide.level_dimensions[0]
        mpp = slide.properties.get(openslide.PROPERTY_NAME_MPP_X)
        want = options.mpp / float(mpp) if options.mpp and mpp else 1.0  # level-0 px per px
        level = slide.get_best_level_for_downsample(max(want, 1.0))
        ds = float(slide.level_downsamples[level])
        side = max(1, round(options.tile_px * max(want, 1.0) / ds))  # at `level`
        step0 = side * ds  # one tile in level-0 pixels
        overview, scale = _overview(slide)  # scale: overview px per level-0 px
        mask = tissue_mask(overview)
    except (openslide.OpenSlideError, OSError, ValueError) as e:
        raise _error(f"unreadable slide ({type(e).__name__})", e) from e
    found = []
    for ty in range(int(h0 // step0)):
        for tx in range(int(w0 // step0)):
            x0, y0 = round(tx * step0), round(ty * step0)
            a, b = int(y0 * scale), int(np.ceil((y0 + step0) * scale))
            c, d = int(x0 * scale), int(np.ceil((x0 + step0) * scale))
            patch = mask[a:b, c:d]
            if patch.size and patch.mean() >= options.tissue_min:
                found.append(TileAddress(rel, level, x0, y0, side))
    return found


def pixels(path: str | os.PathLike[str]) -> np.ndarray | None:
    """The tile's pixels when ``path`` is a tile address (and no file has that name), else None.

    Raises :class:`sslstudio.imaging.decode.DecodeError` when the tile cannot be read."""
    name = os.fspath(path)
    address = parse_address(name)
    if address is None or os.path.exists(name):
        return None
    if address.side > 8192:
        raise _error(f"too large (slide tile of {address.side} px)")
    if not available():
        raise _error("whole-slide image: install openslide (pip install 'sslstudio[slides]')")
    return read_tile(name.rpartition(SEP)[0], address)


def read_tile(slide_path: str, address: TileAddress) -> np.ndarray:
    """``side x side x 3`` uint8 RGB of the tile, transparent areas (outside the scan) white."""
    import openslide

    try:
        slide = _HANDLES.get(slide_path)
        if not 0 <= address.level < slide.level_count:
            raise _error(f"unreadable slide tile (no level {address.level})")
        region = slide.read_region((address.x, address.y), address.level, (address.side,) * 2)
    except (openslide.OpenSlideError, OSError) as e:
        raise _error(f"unreadable slide tile ({type(e).__name__})", e) from e
    white = Image.new("RGBA", region.size, (255, 255, 255, 255))
    return np.asarray(Image.alpha_composite(white, region).convert("RGB"))


def _error(reason: str, cause: BaseException | None = None):

    return DecodeError(reason, error=type(cause).__name__ if cause else "")


def _overview(slide) -> tuple[np.ndarray, float]:
    """A low-resolution RGB picture of the whole slide (at most ~2048 px a side) and its scale."""
    w0, h0 = slide.level_dimensions[0]
    thumb = slide.get_thumbnail((2048, 2048)).convert("RGB")
    return np.asarray(thumb), thumb.size[0] / w0


def tissue_mask(rgb: np.ndarray) -> np.ndarray:
    """Tissue where the colour is saturated (Otsu's threshold on HSV saturation, at least 20/255:
    glass and background are grey-white) and not near-black (pen marks, dust, scanner edges)."""
    hsv = np.asarray(Image.fromarray(rgb).convert("HSV"))
    sat, val = hsv[..., 1], hsv[..., 2]
    return (sat >= max(20, _otsu(sat))) & (val >= 40)


def _otsu(values: np.ndarray) -> int:
    hist = np.bincount(values.ravel(), minlength=256).astype(np.float64)
    total = hist.sum()
    if total == 0:
        return 0
    levels = np.arange(256)
    w0 = np.cumsum(hist)
    m0 = np.cumsum(hist * levels)
    w1 = total - w0
    mean0 = np.divide(m0, w0, out=np.zeros(256), where=w0 > 0)
    mean1 = np.divide(m0[-1] - m0, w1, out=np.zeros(256), where=w1 > 0)
    between = w0 * w1 * (mean0 - mean1) ** 2
    return int(np.argmax(between))
