"""The tool's own ONNX walk, cross-checked against models built with the ``onnx`` package: it
finds external data and custom operators wherever ONNX can hide them (initialisers, Constant
attributes, sparse initialisers, If branches, local functions, opset imports)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from sslstudio.tool.onnxcheck import OnnxCheckError, inspect_onnx
from tests.tool.bundle_factory import onnx_bytes, tiny_net

OPSET = [helper.make_opsetid("", 17)]


def _model(nodes, inits=(), *, opsets=OPSET, functions=(), sparse=()) -> bytes:
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])],
        initializer=list(inits),
        sparse_initializer=list(sparse),
    )
    model = helper.make_model(graph, opset_imports=opsets, functions=list(functions))
    return model.SerializeToString()


def _external(t: TensorProto) -> TensorProto:
    onnx.external_data_helper.set_external_data(t, location="../../etc/passwd")
    t.ClearField("raw_data")
    return t


def _w(name="w") -> TensorProto:
    return numpy_helper.from_array(np.ones(2, np.float32), name)


def test_exported_model_passes_and_names_match_onnx():
    data = onnx_bytes(tiny_net(), 32)
    info = inspect_onnx(data)
    ref = onnx.load_from_string(data)
    inits = {t.name for t in ref.graph.initializer}
    assert info.inputs == [i.name for i in ref.graph.input if i.name not in inits] == ["images"]
    assert info.outputs == [o.name for o in ref.graph.output] == ["features"]
    assert info.opset == 17


def test_plain_handmade_model_passes():
    assert inspect_onnx(_model([helper.make_node("Add", ["x", "w"], ["y"])], [_w()])).inputs == [
        "x"
    ]


def _if_with(inner_node) -> onnx.NodeProto:
    branch = helper.make_graph(
        [inner_node], "b", [], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])]
    )
    return helper.make_node("If", ["c"], ["y"], then_branch=branch, else_branch=branch)


CUSTOM = helper.make_node("Magic", ["x"], ["y"], domain="com.evil")
FUNC = helper.make_function(
    "com.evil", "Magic", ["x"], ["y"], [helper.make_node("Identity", ["x"], ["y"])], OPSET
)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (_model([helper.make_node("Add", ["x", "w"], ["y"])], [_external(_w())]), "external"),
        (_model([helper.make_node("Constant", [], ["y"], value=_external(_w("c")))]), "external"),
        (_model([CUSTOM]), "custom domain 'com.evil'"),
        (_model([helper.make_node("Add", ["x", "x"], ["y"], domain="com.microsoft")]), "custom"),
        (_model([_if_with(CUSTOM)]), "custom domain"),
        (
            _model([_if_with(helper.make_node("Constant", [], ["y"], value=_external(_w("k"))))]),
            "external",
        ),
        (
            _model(
                [helper.make_node("Identity", ["x"], ["y"])],
                opsets=[*OPSET, helper.make_opsetid("com.evil", 1)],
            ),
            "custom operator set",
        ),
        (
            _model([CUSTOM], opsets=[*OPSET, helper.make_opsetid("com.evil", 1)], functions=[FUNC]),
            "custom",
        ),
        (
            _model(
                [helper.make_node("Identity", ["x"], ["y"])],
                sparse=[
                    helper.make_sparse_tensor(
                        _external(_w("v")),
                        numpy_helper.from_array(np.array([0, 1], np.int64), "i"),
                        [2],
                    )
                ],
            ),
            "external",
        ),
    ],
)
def test_refused(data, words):
    with pytest.raises(OnnxCheckError, match=words):
        inspect_onnx(data)


def test_external_data_in_a_real_model_refused(tmp_path):
    model = onnx.load_from_string(onnx_bytes(tiny_net(), 32))
    onnx.save_model(
        model,
        tmp_path / "m.onnx",
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="weights.bin",
        size_threshold=0,
    )
    with pytest.raises(OnnxCheckError, match="external file"):
        inspect_onnx((tmp_path / "m.onnx").read_bytes())


@pytest.mark.parametrize("cut", [1, 7, 100, -3])
def test_truncated_or_garbage_refused(cut):
    data = onnx_bytes(tiny_net(), 32)
    with pytest.raises(OnnxCheckError):
        inspect_onnx(data[:cut] if cut > 0 else data[:cut] + b"\xff\xff\xff")


def test_garbage_bytes_refused():
    for junk in (b"", b"\x00\x01\x02", b"\xff" * 20, b"PK\x03\x04 not onnx"):
        with pytest.raises(OnnxCheckError):
            inspect_onnx(junk)


def test_supplied_initialisers_may_be_external_only_in_the_main_graph():
    main = _model([helper.make_node("Add", ["x", "w"], ["y"])], [_external(_w())])
    assert inspect_onnx(main, frozenset({"w"})).external == {"w"}
    with pytest.raises(OnnxCheckError, match="'w' keeps its data in an external file"):
        inspect_onnx(main)  # not supplied: the runtime would open ../../etc/passwd
    two = _model(
        [helper.make_node("Add", ["x", "w"], ["t"]), helper.make_node("Add", ["t", "v"], ["y"])],
        [_external(_w()), _external(_w("v"))],
    )
    with pytest.raises(OnnxCheckError, match="'v' keeps its data"):
        inspect_onnx(two, frozenset({"w"}))
    # the same name inside a branch, an attribute or a sparse tensor is never supplied
    nested = _model(
        [_if_with(helper.make_node("Constant", [], ["y"], value=_external(_w())))],
        [_w("c")],
    )
    with pytest.raises(OnnxCheckError, match="external file"):
        inspect_onnx(nested, frozenset({"w"}))
