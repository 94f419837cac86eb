"""Refuse ONNX models that reach outside the bundle: external data, non-standard operators.

Why a protobuf walk of our own rather than ``onnx.load``: the tool's only runtime dependency
for models is onnxruntime, and a check that runs only when the ``onnx`` package happens to be
installed is a check most users never get. The fields involved are few and stable (ONNX IR
since 2017), so a short walk reads every graph the runtime could execute (nested If/Loop/Scan
bodies, model-local functions and training graphs included), and the *same* verified bytes go
to onnxruntime afterwards. One code path everywhere; the tests cross-check it against models
built with the ``onnx`` package.

Refused: a tensor anywhere with ``data_location = EXTERNAL`` or ``external_data`` entries (the
runtime would open files named inside the model, relative to who knows where), except the main
graph's initialisers the caller names (a bundle's model.onnx keeps its weights in
backbone.safetensors; the tool hands the runtime those tensors from the verified bytes, so no
file is opened); any node, function or opset import outside the standard domains.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

STANDARD_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml"})
MAX_DEPTH = 32  # nested graphs; real models use 2 or 3

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5

# Field numbers from onnx.proto (IR version 10); only those that lead to tensors, nodes, names.
_MODEL_OPSET, _MODEL_GRAPH, _MODEL_TRAINING, _MODEL_FUNCTIONS = 8, 7, 20, 25
_GRAPH_NODE, _GRAPH_INIT, _GRAPH_INPUT, _GRAPH_OUTPUT, _GRAPH_SPARSE = 1, 5, 11, 12, 15
_NODE_OP, _NODE_ATTR, _NODE_DOMAIN = 4, 5, 7
_ATTR_T, _ATTR_G, _ATTR_TENSORS, _ATTR_GRAPHS, _ATTR_SPARSE, _ATTR_SPARSES = 5, 6, 10, 11, 22, 23
_TENSOR_NAME, _TENSOR_EXTERNAL, _TENSOR_LOCATION = 8, 13, 14
_SPARSE_VALUES, _SPARSE_INDICES = 1, 2
_FUNC_NODE, _FUNC_OPSET, _FUNC_DOMAIN, _FUNC_NAME = 7, 9, 10, 1
_OPSET_DOMAIN, _OPSET_VERSION = 1, 2
_EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL


class OnnxCheckError(ValueError):
    """The model breaks a loading rule; the message says which, the caller names the file."""


@dataclass
class OnnxInfo:
    opset: int = 0  # the default domain's version
    inputs: list[str] = field(default_factory=list)  # graph inputs that are not initialisers
    outputs: list[str] = field(default_factory=list)
    external: set[str] = field(default_factory=set)  # main-graph initialisers kept outside


def inspect_onnx(data: bytes, supplied: frozenset[str] = frozenset()) -> OnnxInfo:
    """Walk the whole model; raise OnnxCheckError on the first rule it breaks. Initialisers of
    the main graph named in ``supplied`` may keep their data outside (the caller supplies it)."""
    info = OnnxInfo()
    graph: memoryview | None = None
    for num, value in _fields(memoryview(data)):
        if num == _MODEL_OPSET:
            domain, version = _opset(value)
            info.opset = version if domain in ("", "ai.onnx") else info.opset
        elif num == _MODEL_GRAPH:
            graph = _bytes(value)
        elif num == _MODEL_FUNCTIONS:
            _function(_bytes(value), 1)
        elif num == _MODEL_TRAINING:
            for sub_num, sub in _fields(_bytes(value)):
                if sub_num in (1, 2):  # initialization and algorithm graphs
                    _graph(_bytes(sub), 1)
    if graph is None:
        raise OnnxCheckError("not an ONNX model (no graph)")
    inputs, outputs, initialisers = _graph(graph, 1, supplied, info.external)
    info.inputs = [n for n in inputs if n not in initialisers]
    info.outputs = outputs
    return info


def _graph(
    buf: memoryview,
    depth: int,
    supplied: frozenset[str] = frozenset(),
    external: set[str] | None = None,
) -> tuple[list[str], list[str], set[str]]:
    if depth > MAX_DEPTH:
        raise OnnxCheckError(f"graphs nested deeper than {MAX_DEPTH}")
    inputs: list[str] = []
    outputs: list[str] = []
    initialisers: set[str] = set()
    for num, value in _fields(buf):
        if num == _GRAPH_NODE:
            _node(_bytes(value), depth)
        elif num == _GRAPH_INIT:
            name, outside = _tensor(_bytes(value), supplied)
            initialisers.add(name)
            if outside and external is not None:
                external.add(name)
        elif num == _GRAPH_SPARSE:
            _sparse(_bytes(value))
        elif num in (_GRAPH_INPUT, _GRAPH_OUTPUT):
            name = _string_field(_bytes(value), 1)  # ValueInfoProto.name
            (inputs if num == _GRAPH_INPUT else outputs).append(name)
    return inputs, outputs, initialisers


def _node(buf: memoryview, depth: int) -> None:
    domain, op = "", ""
    attributes: list[memoryview] = []
    for num, value in _fields(buf):
        if num == _NODE_DOMAIN:
            domain = _text(value)
        elif num == _NODE_OP:
            op = _text(value)
        elif num == _NODE_ATTR:
            attributes.append(_bytes(value))
    if domain not in STANDARD_DOMAINS:
        raise OnnxCheckError(
            f"operator {op!r} is in the custom domain {domain!r}; only the "
            "standard ONNX operators are allowed"
        )
    for attr in attributes:
        for num, value in _fields(attr):
            if num in (_ATTR_T, _ATTR_TENSORS):
                _tensor(_bytes(value))
            elif num in (_ATTR_G, _ATTR_GRAPHS):
                _graph(_bytes(value), depth + 1)
            elif num in (_ATTR_SPARSE, _ATTR_SPARSES):
                _sparse(_bytes(value))


def _function(buf: memoryview, depth: int) -> None:
    name, domain = "", ""
    for num, value in _fields(buf):
        if num == _FUNC_NAME:
            name = _text(value)
        elif num == _FUNC_DOMAIN:
            domain = _text(value)
        elif num == _FUNC_OPSET:
            _opset(value)
        elif num == _FUNC_NODE:
            _node(_bytes(value), depth)
    if domain not in STANDARD_DOMAINS:
        raise OnnxCheckError(f"defines function {name!r} in the custom domain {domain!r}")


def _tensor(buf: memoryview, supplied: frozenset[str] = frozenset()) -> tuple[str, bool]:
    """(name, whether its data is kept outside); outside is refused unless ``supplied`` names it
    (the name may come after the external fields: judged once the whole tensor is read)."""
    name, outside = "", False
    for num, value in _fields(buf):
        if num == _TENSOR_NAME:
            name = _text(value)
        elif num == _TENSOR_EXTERNAL or (num == _TENSOR_LOCATION and value == _EXTERNAL):
            outside = True
    if outside and name not in supplied:
        raise OnnxCheckError(
            f"tensor {name or '(unnamed)'!r} keeps its data in an external "
            "file; export the model as one self-contained file"
        )
    return name, outside


def _sparse(buf: memoryview) -> None:
    for num, value in _fields(buf):
        if num in (_SPARSE_VALUES, _SPARSE_INDICES):
            _tensor(_bytes(value))


def _opset(value: int | memoryview) -> tuple[str, int]:
    domain, version = "", 0
    for num, v in _fields(_bytes(value)):
        if num == _OPSET_DOMAIN:
            domain = _text(v)
        elif num == _OPSET_VERSION and isinstance(v, int):
            version = v
    if domain not in STANDARD_DOMAINS:
        raise OnnxCheckError(f"imports the custom operator set {domain!r}")
    return domain, version


def _string_field(buf: memoryview, wanted: int) -> str:
    return next((_text(v) for num, v in _fields(buf) if num == wanted), "")


def _bytes(value: int | memoryview) -> memoryview:
    if isinstance(value, int):
        raise OnnxCheckError("malformed protobuf: a message field holds a number")
    return value


def _text(value: int | memoryview) -> str:
    try:
        return bytes(_bytes(value)).decode("utf-8")
    except UnicodeDecodeError as e:
        raise OnnxCheckError("malformed protobuf: a name is not UTF-8") from e


def _fields(buf: memoryview) -> Iterator[tuple[int, int | memoryview]]:
    """(field number, value) of each field; numbers for varints, views for length-delimited.

    Fixed-width fields yield 0: nothing checked here lives in them. Large payloads (raw_data)
    are skipped by slicing a memoryview, so a 100 MB model costs milliseconds.
    """
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        num, wire = key >> 3, key & 7
        value: int | memoryview = 0
        if wire == _VARINT:
            value, pos = _varint(buf, pos)
        elif wire == _I64:
            pos += 8
        elif wire == _I32:
            pos += 4
        elif wire == _LEN:
            size, pos = _varint(buf, pos)
            value = buf[pos : pos + size]
            pos += size
        else:
            raise OnnxCheckError(f"malformed protobuf: wire type {wire} at byte {pos}")
        if pos > end or num == 0:
            raise OnnxCheckError("malformed or truncated protobuf")
        yield num, value


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    for i in range(pos, min(pos + 10, len(buf))):
        byte = buf[i]
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, i + 1
        shift += 7
    raise OnnxCheckError("malformed or truncated protobuf (bad varint)")
