"""The tool's own safetensors and .npy readers: what the reference writers produce reads back
exactly, and every malformation the loading rules name is refused with a reason."""

from __future__ import annotations

import io
import json
import struct

import numpy as np
import pytest
from safetensors.numpy import save as st_save

from sslstudio.tool.tensors import TensorFileError, parse_safetensors, read_npy, tensor


def _file(header: dict, data: bytes = b"", *, pad: bytes = b"") -> bytes:
    raw = json.dumps(header).encode() + pad
    return struct.pack("<Q", len(raw)) + raw + data


def test_reads_what_the_safetensors_package_writes():
    w = np.arange(12, dtype=np.float32).reshape(3, 4)
    b = np.array([1.5, -2.0, 0.0], np.float32)
    data = st_save({"weight": w, "bias": b}, metadata={"note": "x"})
    entries = parse_safetensors(data, len(data))
    assert set(entries) == {"weight", "bias"}
    np.testing.assert_array_equal(tensor(data, entries["weight"]), w)
    np.testing.assert_array_equal(tensor(data, entries["bias"]), b)


def test_empty_tensor_and_header_padding_are_fine():
    data = _file({"e": {"dtype": "F32", "shape": [0, 4], "data_offsets": [0, 0]}}, pad=b"   ")
    assert parse_safetensors(data, len(data))["e"].shape == (0, 4)


GOOD = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"\x01\x02", "too short"),
        (struct.pack("<Q", 1 << 40) + b"{}", "exceeds"),
        (struct.pack("<Q", 100) + b"{}", "runs past"),
        (struct.pack("<Q", 4) + b"[1] ", "not a JSON object"),
        (struct.pack("<Q", 3) + b"{x}", "not valid JSON"),
        (struct.pack("<Q", 2) + b"\xff\xfe", "not a JSON object"),
        (_file({"t": {"dtype": "Q99", "shape": [2], "data_offsets": [0, 8]}}, bytes(8)), "dtype"),
        (_file({"t": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 8]}}, bytes(8)), "shape"),
        (_file({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0]}}, bytes(8)), "offsets"),
        (_file({"t": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, bytes(8)), "spans"),
        (_file({"t": {"dtype": "F32", "shape": [2]}}, bytes(8)), "exactly"),
        (_file({"t": GOOD}, bytes(12)), "cover 8 of the 12"),  # trailing bytes
        (_file({"t": GOOD}, bytes(4)), "cover 8 of the 4"),  # truncated data
        (_file({"t": GOOD, "u": GOOD}, bytes(16)), "starts at 0, not 8"),  # overlap
        (_file({"t": {**GOOD, "data_offsets": [8, 16]}}, bytes(16)), "starts at 8, not 0"),  # gap
        (_file({"__metadata__": {"a": 1}}), "__metadata__"),
    ],
)
def test_malformed_safetensors_refused(data, words):
    with pytest.raises(TensorFileError, match=words):
        parse_safetensors(data, len(data))


def test_duplicate_keys_refused():
    raw = b'{"t": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}, "t": {}}'
    data = struct.pack("<Q", len(raw)) + raw
    with pytest.raises(TensorFileError, match="duplicate"):
        parse_safetensors(data, len(data))


def _npy(arr: np.ndarray, **kw) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, **kw)
    return buf.getvalue()


def test_npy_round_trip_without_copy():
    arr = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    data = _npy(arr)
    out = read_npy(data)
    np.testing.assert_array_equal(out, arr)
    assert not out.flags.writeable  # a view of the verified bytes, not a copy


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (_npy(np.array([{"a": 1}], dtype=object), allow_pickle=True), "pickle"),
        (_npy(np.asfortranarray(np.ones((3, 2), np.float32))), "Fortran"),
        (_npy(np.ones((4, 4), np.float32))[:-5], "data bytes"),
        (_npy(np.ones((4, 4), np.float32)) + b"xx", "data bytes"),
        (b"\x93NUMPY\x01\x00\x10\x00{'descr': 1}    \n", "malformed"),
        (b"not an npy file at all", "malformed"),
    ],
)
def test_bad_npy_refused(data, words):
    with pytest.raises(TensorFileError, match=words):
        read_npy(data)
