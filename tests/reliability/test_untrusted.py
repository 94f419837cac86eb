"""RELIABILITY.md items 28-31: weights, tensors and bundles from other people.

Covered elsewhere and not repeated here: a pickle saved with ``torch.save`` as weights
(tests/core/models/test_backbones.py) and inside a checkpoint (tests/core/test_checkpoints.py);
the safetensors header rules one by one (tests/tool/test_tensors.py); a byte flipped in each
bundle file (tests/tool/test_bundle.py); ONNX external data and custom domains in every place
a graph can hide them (tests/tool/test_onnxcheck.py). Here: the other ways a pickle arrives,
malformed and non-finite weight files in the studio, a manifest edited by hand, and the ONNX
rules at the bundle level with data really lying outside the bundle.
"""

from __future__ import annotations

import json
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper
from safetensors.numpy import save as st_save

from sslstudio.core.models.backbones import build_backbone
from sslstudio.errors import WeightsError
from sslstudio.tool.bundle import BundleError, load_bundle
from tests.tool.bundle_factory import copy_bundle, edit_manifest, make_bundle, rehash, zip_bundle

# -- 28: a pickle offered as weights never runs -----------------------------------------------


class Payload:
    """Unpickling calls ``os.makedirs(marker)``: the marker's existence proves code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.makedirs, (str(self.marker),))


def _torch_zip(obj, path: Path) -> None:
    import torch

    torch.save(obj, path)


def _torch_legacy(obj, path: Path) -> None:
    import torch

    torch.save(obj, path, _use_new_zipfile_serialization=False)


def _plain_pickle(obj, path: Path) -> None:
    path.write_bytes(pickle.dumps(obj, protocol=2))


DISGUISES = {
    "state_dict-in-zip.pt": (_torch_zip, lambda p: {"state_dict": {"conv.weight": p}}),
    "legacy-format.pth": (_torch_legacy, lambda p: {"conv.weight": p}),
    "plain-pickle.bin": (_plain_pickle, lambda p: p),
    "pickle-named.safetensors": (_plain_pickle, lambda p: {"conv.weight": p}),
}


@pytest.mark.parametrize("name", sorted(DISGUISES))
def test_pickled_weights_are_refused_and_the_payload_never_runs(tmp_path, name):
    write, wrap = DISGUISES[name]
    marker = tmp_path / "payload-ran"
    write(wrap(Payload(marker)), tmp_path / name)
    with pytest.raises(WeightsError) as refused:
        build_backbone("tiny_cnn", small_stem=True, weights=str(tmp_path / name))
    message = str(refused.value)
    assert name in message
    assert "refused to load" in message or "not a valid safetensors file" in message
    assert not marker.exists()


def test_the_payload_is_live(tmp_path):
    """The control: the same bytes unpickled naively do run, so the test above can fail."""
    marker = tmp_path / "payload-ran"
    pickle.loads(pickle.dumps(Payload(marker), protocol=2))
    assert marker.is_dir()


# -- 29: malformed safetensors ----------------------------------------------------------------


def _tiny_cnn_weights() -> dict[str, np.ndarray]:
    body = build_backbone("tiny_cnn", small_stem=True).body
    return {k: v.detach().numpy().copy() for k, v in body.state_dict().items()}


def _header(entries: dict, data: bytes) -> bytes:
    raw = json.dumps(entries).encode()
    return struct.pack("<Q", len(raw)) + raw + data


F32x2 = {"dtype": "F32", "shape": [2]}
MALFORMED = {
    "truncated": lambda good: good[: len(good) // 2],
    "huge-header-length": lambda good: (1 << 60).to_bytes(8, "little") + good[8:],
    "overlapping-offsets": lambda good: _header(
        {"a": {**F32x2, "data_offsets": [0, 8]}, "b": {**F32x2, "data_offsets": [4, 12]}}, bytes(12)
    ),
}


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_malformed_safetensors_weights_are_a_clear_error(tmp_path, kind):
    path = tmp_path / f"{kind}.safetensors"
    path.write_bytes(MALFORMED[kind](st_save(_tiny_cnn_weights())))
    with pytest.raises(WeightsError, match=f"{path.name} is not a valid safetensors file"):
        build_backbone("tiny_cnn", small_stem=True, weights=str(path))


def test_non_finite_weights_are_a_clear_error(tmp_path):
    weights = _tiny_cnn_weights()
    name = next(k for k, v in weights.items() if v.dtype.kind == "f" and v.size)
    weights[name].reshape(-1)[0] = np.nan
    path = tmp_path / "nan.safetensors"
    path.write_bytes(st_save(weights))
    with pytest.raises(WeightsError, match="NaN"):
        build_backbone("tiny_cnn", small_stem=True, weights=str(path))


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    from tests.shapes import make_shapes_folder

    root = tmp_path_factory.mktemp("untrusted")
    images = make_shapes_folder(root / "images", per_class=2, size=16, shapes=("circle", "square"))
    return make_bundle(root / "bundle", images, size=16, dim=8)


@pytest.fixture
def damaged(tmp_path, bundle) -> Path:
    return copy_bundle(bundle, tmp_path / "bundle")


def test_bundle_classifier_with_nan_is_refused(damaged):
    w = np.full((2, 8), 0.5, np.float32)
    w[1, 3] = np.nan
    (damaged / "classifier.safetensors").write_bytes(
        st_save({"weight": w, "bias": np.zeros(2, np.float32)})
    )
    rehash(damaged)  # hashes right: only the NaN check can refuse it
    with pytest.raises(BundleError, match="classifier.safetensors: holds NaN or infinite"):
        load_bundle(damaged)


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_bundle_safetensors_malformed_names_the_file(damaged, kind):
    for name in ("classifier.safetensors", "backbone.safetensors"):  # used / only carried along
        path = damaged / name
        good = path.read_bytes()
        path.write_bytes(MALFORMED[kind](good))
        rehash(damaged)  # hashes right: only the tensor file checks can refuse it
        with pytest.raises(BundleError, match=f"{name}: "):
            load_bundle(damaged)
        path.write_bytes(good)
        rehash(damaged)
        assert load_bundle(damaged).count == 4


# -- 30: a manifest edited by hand ------------------------------------------------------------


def _set_hash(name: str, digest: str):
    return lambda m: m["files"][name].update(sha256=digest)


@pytest.mark.parametrize("name", ["model.onnx", "embeddings.npy", "items.json"])
def test_edited_manifest_checksum_names_the_file(tmp_path, damaged, name):
    edit_manifest(damaged, _set_hash(name, "0" * 64))
    with pytest.raises(BundleError, match=f"{name}: sha256 differs from the manifest"):
        load_bundle(damaged)
    with pytest.raises(BundleError, match=f"{name}: sha256 differs from the manifest"):
        load_bundle(zip_bundle(damaged, tmp_path / "b.zip"))


def test_edited_manifest_size_names_the_file(damaged):
    edit_manifest(damaged, lambda m: m["files"]["embeddings.npy"].update(bytes=12))
    with pytest.raises(BundleError, match=r"embeddings.npy: \d+ bytes, manifest says 12"):
        load_bundle(damaged)


def test_swapped_file_with_its_own_hash_is_caught_by_the_contents(damaged):
    """An attacker who rehashes a swapped file still meets the consistency checks."""
    np.save(damaged / "embeddings.npy", np.ones((4, 8), np.float32))
    rehash(damaged)
    with pytest.raises(BundleError, match="embeddings.npy: rows are not L2-normalised"):
        load_bundle(damaged)


# -- 31: ONNX reaching outside the bundle -----------------------------------------------------


def test_onnx_external_data_outside_the_bundle_is_refused(tmp_path, damaged):
    model = onnx.load(damaged / "model.onnx")
    # Real external data beside the bundle, named with '..' from inside it.
    onnx.save_model(
        model,
        tmp_path / "outside.onnx",
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="secret.bin",
        size_threshold=0,
    )
    external = onnx.load(tmp_path / "outside.onnx", load_external_data=False)
    for t in external.graph.initializer:
        for entry in t.external_data:
            if entry.key == "location":
                entry.value = "../secret.bin"
    (damaged / "model.onnx").write_bytes(external.SerializeToString())
    rehash(damaged)
    assert (damaged / ".." / "secret.bin").is_file()  # the data really is there to be read
    with pytest.raises(BundleError, match="model.onnx: tensor .* keeps its data in an external"):
        load_bundle(damaged)


def test_onnx_custom_operator_set_is_refused(damaged):
    model = onnx.load(damaged / "model.onnx")
    model.opset_import.append(helper.make_opsetid("com.example.custom", 1))
    onnx.save(model, damaged / "model.onnx")
    rehash(damaged)
    with pytest.raises(BundleError, match="model.onnx: imports the custom operator set"):
        load_bundle(damaged)
