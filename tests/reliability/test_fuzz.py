"""Hostile bytes into every reader of files from elsewhere: only the documented error escapes.

``imaging`` raises DecodeError, the bundle loader BundleError, the tensor readers
TensorFileError, the ONNX walk OnnxCheckError; anything else (IndexError, struct.error, a zip
module's NotImplementedError ...) is a bug. ``tests/core/data/test_imaging.py`` already fuzzes
PNG, JPEG and GIF; here: TIFF in its layouts (Pillow's and tifffile's paths), BMP, WebP, deep
and palette PNG, and random tails behind every magic number, so the bytes get past sniffing.
Short runs (``max_examples`` small): this file must stay under ~20 s on two cores.
Pillow's UserWarnings on damaged TIFF tags (and numpy's on a fuzzed .npy header) are expected.
"""

from __future__ import annotations

import io
import json
import os
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from sslstudio.imaging import decode as imaging
from sslstudio.tool.bundle import BundleError, load_bundle
from sslstudio.tool.onnxcheck import OnnxCheckError, inspect_onnx
from sslstudio.tool.tensors import TensorFileError, parse_safetensors, read_npy, tensor
from tests import image_factory as f

# SSLSTUDIO_FUZZ_EXAMPLES=2000 for a long hunt; the default keeps the file short.
EXAMPLES = int(os.environ.get("SSLSTUDIO_FUZZ_EXAMPLES", "50"))
pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning:PIL"),
    pytest.mark.filterwarnings("ignore:invalid escape sequence"),  # numpy parsing a fuzzed header
]
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))


def _mutate(seed: bytes, edits: list[tuple[int, int]], cut: int | None) -> bytes:
    data = bytearray(seed)
    for pos, value in edits:
        data[pos % len(data)] = value
    return bytes(data[:cut] if cut is not None else data)


EDITS = st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)), min_size=1, max_size=6)
CUTS = st.one_of(st.none(), st.integers(0, 1 << 16))


# -- images -----------------------------------------------------------------------------------


def _image_seeds(folder: Path) -> list[bytes]:
    rgb = Image.fromarray(np.random.default_rng(0).integers(0, 256, (12, 16, 3), dtype=np.uint8))
    buffers = []
    for fmt, kwargs in (
        ("TIFF", {}),
        ("TIFF", {"compression": "tiff_lzw"}),
        ("TIFF", {"compression": "tiff_adobe_deflate"}),
        ("BMP", {}),
        ("WEBP", {"lossless": True}),
    ):
        buf = io.BytesIO()
        rgb.save(buf, format=fmt, **kwargs)
        buffers.append(buf.getvalue())
    writers = (
        f.write_grey16_tiff,
        lambda d: f.write_grey16_tiff(d, "be.tif", ">"),
        f.write_five_channel_tiff,  # read by tifffile, not Pillow
        f.write_page_stack_tiff,
        f.write_float32_tiff,
        f.write_rgb16_png,
        f.write_palette_transparent_png,
        f.write_exif_jpeg,
        f.write_whole_slide_tiff,
    )
    return buffers + [w(folder).read_bytes() for w in writers]


@pytest.fixture(scope="module")
def image_seeds(tmp_path_factory) -> list[bytes]:
    return _image_seeds(tmp_path_factory.mktemp("seeds"))


MAGIC = [
    b"\xff\xd8\xff",
    b"\x89PNG\r\n\x1a\n",
    b"II*\x00",
    b"MM\x00*",
    b"II+\x00",
    b"GIF89a",
    b"RIFF\x00\x00\x00\x00WEBPVP8 ",
    b"BM" + bytes(12) + (40).to_bytes(4, "little"),
]


def _pixels_or_reason(folder: Path, data: bytes) -> None:
    path = folder / "x.img"
    path.write_bytes(data)
    calls = (
        imaging.decode,
        lambda p: imaging.decode_resized(p, 16),
        lambda p: imaging.decode(p, channels=(0, 1, 2)),
        lambda p: imaging.read_info(p, verify=True),
    )
    for call in calls:
        try:
            out = call(path)
        except imaging.DecodeError as e:
            assert e.reason and imaging.reason_category(e.reason)
            continue
        if isinstance(out, np.ndarray):
            assert out.ndim == 3 and out.shape[2] == 3 and out.dtype == np.uint8


@FUZZ
@given(magic=st.sampled_from(MAGIC), tail=st.binary(max_size=512))
def test_random_bytes_behind_a_magic_number(tmp_path_factory, magic, tail):
    _pixels_or_reason(tmp_path_factory.mktemp("fuzz"), magic + tail)


@FUZZ
@given(which=st.integers(0, 13), edits=EDITS, cut=CUTS)
def test_mutated_tiff_bmp_webp_and_deep_png(tmp_path_factory, image_seeds, which, edits, cut):
    data = _mutate(image_seeds[which % len(image_seeds)], edits, cut)
    _pixels_or_reason(tmp_path_factory.mktemp("fuzz"), data)


# -- safetensors, .npy, ONNX ------------------------------------------------------------------


def _safetensors() -> bytes:
    from safetensors.numpy import save

    return save({"weight": np.ones((3, 4), np.float32), "bias": np.zeros(3, np.float32)})


SAFETENSORS = _safetensors()


def _read_tensors(data: bytes) -> None:
    try:
        entries = parse_safetensors(data, len(data))
        for entry in entries.values():
            tensor(data, entry)
    except TensorFileError as e:
        assert str(e)


@FUZZ
@given(data=st.binary(max_size=256))
def test_safetensors_random_bytes(data):
    _read_tensors(data)


@FUZZ
@given(edits=EDITS, cut=CUTS)
def test_safetensors_mutated(edits, cut):
    _read_tensors(_mutate(SAFETENSORS, edits, cut))


@FUZZ
@given(
    header=st.recursive(
        st.none() | st.booleans() | st.integers(-(1 << 70), 1 << 70) | st.text(max_size=8),
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
        ),
        max_leaves=12,
    ),
    data=st.binary(max_size=64),
)
def test_safetensors_arbitrary_json_headers(header, data):
    raw = json.dumps(header).encode()
    _read_tensors(struct.pack("<Q", len(raw)) + raw + data)


@FUZZ
@given(edits=EDITS, cut=CUTS)
def test_npy_mutated(edits, cut):
    buf = io.BytesIO()
    np.save(buf, np.ones((4, 3), np.float32))
    try:
        read_npy(_mutate(buf.getvalue(), edits, cut))
    except TensorFileError as e:
        assert str(e)


# -- bundles ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    from tests.shapes import make_shapes_folder
    from tests.tool.bundle_factory import make_bundle

    root = tmp_path_factory.mktemp("fuzz-bundle")
    images = make_shapes_folder(root / "images", per_class=2, size=16, shapes=("circle", "square"))
    return make_bundle(root / "bundle", images, size=16, dim=8)


def _refused_or_loaded(path: Path) -> None:
    try:
        load_bundle(path)
    except BundleError as e:
        assert str(e)


@FUZZ
@given(edits=EDITS, cut=CUTS)
def test_onnx_mutated(bundle, edits, cut):
    try:
        inspect_onnx(_mutate((bundle / "model.onnx").read_bytes(), edits, cut))
    except OnnxCheckError as e:
        assert str(e)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


@FUZZ
@given(key=st.integers(0, 99), path=st.lists(st.integers(0, 99), max_size=2), value=JSON)
def test_manifest_with_one_field_replaced(tmp_path_factory, bundle, key, path, value):
    """A valid manifest with any one field (at any depth) set to any JSON value."""
    from tests.tool.bundle_factory import copy_bundle

    copy = copy_bundle(bundle, tmp_path_factory.mktemp("fuzz") / "b")
    manifest = json.loads((copy / "manifest.json").read_text())
    keys = sorted(manifest)
    node, field = manifest, keys[key % len(keys)]
    for step in path:  # walk into an object when there is one
        child = node.get(field)
        if not isinstance(child, dict) or not child:
            break
        node, field = child, sorted(child)[step % len(child)]
    node[field] = value
    (copy / "manifest.json").write_text(json.dumps(manifest))
    _refused_or_loaded(copy)


@FUZZ
@given(data=st.binary(max_size=512))
def test_manifest_random_bytes(tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("fuzz")
    (folder / "manifest.json").write_bytes(data)
    _refused_or_loaded(folder)


@FUZZ
@given(edits=EDITS, cut=CUTS)
def test_zipped_bundle_mutated(tmp_path_factory, bundle, edits, cut):
    folder = tmp_path_factory.mktemp("fuzz")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(bundle.iterdir()):
            zf.write(p, p.name)
    (folder / "b.zip").write_bytes(_mutate(buf.getvalue(), edits, cut))
    _refused_or_loaded(folder / "b.zip")
