"""Safetensors and .npy read from verified bytes, without the safetensors package or pickle.

The tool's runtime dependencies stay numpy + pillow + onnxruntime, so the safetensors header
(8-byte little-endian length, a JSON object, the raw buffer) is parsed here, with the checks the
reference implementation makes: known dtypes, byte counts that match the shapes, offsets that
tile the buffer exactly (no gaps, no overlaps, nothing after the last tensor). A ``.npy`` is
read through numpy's header parser and mapped with ``np.frombuffer``: no copy, never pickled.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

MAX_HEADER_BYTES = 100_000_000  # the reference implementation's own limit
ITEM_BYTES = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "U16": 2,
    "I16": 2,
    "F16": 2,
    "BF16": 2,
    "U32": 4,
    "I32": 4,
    "F32": 4,
    "U64": 8,
    "I64": 8,
    "F64": 8,
}
_NUMPY = {"F32": "<f4", "F64": "<f8", "F16": "<f2", "I64": "<i8", "I32": "<i4", "U8": "u1"}


class TensorFileError(ValueError):
    """A malformed tensor file; the message says what is wrong, the caller names the file."""


@dataclass(frozen=True)
class TensorEntry:
    dtype: str
    shape: tuple[int, ...]
    start: int  # absolute byte offsets in the file
    end: int


def safetensors_header_length(first8: bytes, file_size: int) -> int:
    """The JSON header's length from the first 8 bytes, checked against the file size."""
    if file_size < 8 or len(first8) < 8:
        raise TensorFileError(f"too short for a safetensors file ({file_size} bytes)")
    n = int.from_bytes(first8[:8], "little")
    if n > MAX_HEADER_BYTES:
        raise TensorFileError(f"header length {n} exceeds the {MAX_HEADER_BYTES}-byte limit")
    if n > file_size - 8:
        raise TensorFileError(f"header length {n} runs past the end of the file ({file_size} B)")
    return n


def parse_safetensors(prefix: bytes, file_size: int) -> dict[str, TensorEntry]:
    """Validate the header held in ``prefix`` (>= 8 + header bytes) of a ``file_size`` file."""
    n = safetensors_header_length(prefix[:8], file_size)
    raw = prefix[8 : 8 + n]
    if len(raw) < n:
        raise TensorFileError("header truncated")
    if not raw.lstrip(b" ").startswith(b"{"):
        raise TensorFileError("header is not a JSON object")
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError) as e:
        raise TensorFileError(f"header is not valid JSON ({e})") from e
    if not isinstance(header, dict):
        raise TensorFileError("header is not a JSON object")
    meta = header.pop("__metadata__", {})
    if not isinstance(meta, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in meta.items()
    ):
        raise TensorFileError("__metadata__ must map strings to strings")
    buffer = file_size - 8 - n
    entries = {name: _entry(name, spec, 8 + n) for name, spec in header.items()}
    expected = 0  # tensors must tile the buffer in offset order, exactly
    for name, e in sorted(entries.items(), key=lambda kv: (kv[1].start, kv[1].end)):
        if e.start - 8 - n != expected:
            raise TensorFileError(f"tensor {name!r} starts at {e.start - 8 - n}, not {expected}")
        expected = e.end - 8 - n
    if expected != buffer:
        raise TensorFileError(f"tensors cover {expected} of the {buffer} data bytes")
    return entries


def tensor(data: bytes, entry: TensorEntry) -> np.ndarray:
    """A read-only view of one tensor in ``data`` (the whole file's bytes)."""
    if entry.dtype not in _NUMPY:
        raise TensorFileError(f"dtype {entry.dtype} is not readable by this tool")
    count = math.prod(entry.shape)
    arr = np.frombuffer(data, dtype=_NUMPY[entry.dtype], count=count, offset=entry.start)
    return arr.reshape(entry.shape)


def read_npy(data: bytes) -> np.ndarray:
    """A read-only array over ``data``; object arrays (pickles) and bad sizes are refused."""
    fp = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(fp)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
        else:
            raise TensorFileError(f"unsupported .npy version {version[0]}.{version[1]}")
    except TensorFileError:
        raise
    except Exception as e:  # numpy raises ValueError or SyntaxError on hostile headers
        raise TensorFileError(f"malformed .npy header ({e})") from e
    if dtype.hasobject:
        raise TensorFileError("holds Python objects (a pickle); refused")
    if fortran:
        raise TensorFileError("is Fortran-ordered; write it C-ordered")
    count = math.prod(shape)
    offset = fp.tell()
    if len(data) - offset != count * dtype.itemsize:
        raise TensorFileError(
            f"holds {len(data) - offset} data bytes, shape {shape} {dtype} needs "
            f"{count * dtype.itemsize}"
        )
    return np.frombuffer(data, dtype=dtype, count=count, offset=offset).reshape(shape)


def _entry(name: str, spec: Any, base: int) -> TensorEntry:
    if not isinstance(spec, dict) or set(spec) != {"dtype", "shape", "data_offsets"}:
        raise TensorFileError(f"tensor {name!r} needs exactly dtype, shape and data_offsets")
    dtype, shape, offsets = spec["dtype"], spec["shape"], spec["data_offsets"]
    if dtype not in ITEM_BYTES:
        raise TensorFileError(f"tensor {name!r} has unknown dtype {dtype!r}")
    if not isinstance(shape, list) or not all(_nonneg(d) for d in shape):
        raise TensorFileError(f"tensor {name!r} has a bad shape {shape!r}")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(_nonneg, offsets))):
        raise TensorFileError(f"tensor {name!r} has bad data_offsets {offsets!r}")
    begin, end = offsets
    need = math.prod(shape) * ITEM_BYTES[dtype]
    if end - begin != need:
        raise TensorFileError(
            f"tensor {name!r} spans {end - begin} bytes; {dtype}{shape} is {need}"
        )
    return TensorEntry(dtype, tuple(shape), base + begin, base + end)


def _nonneg(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out
