"""Loading rules of docs/bundle-format.md: each refusal names the file and the problem."""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import onnx
import pytest
from onnx import helper

from sslstudio.tool.bundle import BundleError, load_bundle
from tests.tool.bundle_factory import edit_manifest, rehash, zip_bundle


def test_loads_and_checks_out(bundle_dir):
    b = load_bundle(bundle_dir)
    assert (b.count, b.dim, b.input.size) == (8, 16, 32)
    assert b.classifier is not None and b.classifier.classes == ("circle", "square")
    assert b.paths[0] == "circle/circle_0000.png"
    np.testing.assert_allclose(np.linalg.norm(b.embeddings, axis=1), 1, atol=1e-5)
    assert b.model_version.startswith("simclr-tiny_test_cnn-")


@pytest.mark.parametrize("top", [None, "my-bundle"])
def test_zip_read_in_place(tmp_path, bundle_dir, top):
    z = zip_bundle(
        bundle_dir,
        tmp_path / "b.zip",
        top=top,
        extra=[("../../escaped.txt", b"x"), ("/abs.txt", b"y")],
    )
    b = load_bundle(z)
    assert b.count == 8 and b.onnx_model == (bundle_dir / "model.onnx").read_bytes()
    assert not (tmp_path.parent / "escaped.txt").exists()  # unlisted members are never touched


def test_zip_member_that_is_a_link_refused(tmp_path, bundle_dir):
    z = zip_bundle(bundle_dir, tmp_path / "b.zip")
    with zipfile.ZipFile(z) as src, zipfile.ZipFile(tmp_path / "l.zip", "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "items.json":
                info.external_attr = 0o120777 << 16  # a symlink member
            dst.writestr(info, data)
    with pytest.raises(BundleError, match="items.json is a link"):
        load_bundle(tmp_path / "l.zip")


def _flip(path, at: int = -10) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "name",
    [
        "model.onnx",
        "embeddings.npy",
        "items.json",
        "classifier.safetensors",
        "backbone.safetensors",
    ],
)
def test_tampered_file_refused(bundle_copy, name):
    _flip(bundle_copy / name)
    with pytest.raises(BundleError, match=f"{name}: sha256 differs"):
        load_bundle(bundle_copy)


def test_truncated_file_refused(bundle_copy):
    p = bundle_copy / "model.onnx"
    p.write_bytes(p.read_bytes()[:-100])
    with pytest.raises(BundleError, match=r"model.onnx: \d+ bytes, manifest says \d+ \(truncated"):
        load_bundle(bundle_copy)


def test_tampered_zip_member_refused(tmp_path, bundle_copy):
    _flip(bundle_copy / "embeddings.npy")
    with pytest.raises(BundleError, match="embeddings.npy: sha256"):
        load_bundle(zip_bundle(bundle_copy, tmp_path / "t.zip"))


@pytest.mark.parametrize(
    "bad", ["/etc/passwd", "../model.onnx", "a/../model.onnx", "./x", "C:/x.onnx", "a\\b.onnx", ""]
)
def test_bad_manifest_paths_refused(bundle_copy, bad):
    edit_manifest(bundle_copy, lambda m: m["onnx"].update(file=bad))
    with pytest.raises(BundleError, match="absolute, contains '..'"):
        load_bundle(bundle_copy)


def test_bad_path_in_files_list_refused(bundle_copy):
    edit_manifest(
        bundle_copy, lambda m: m["files"].update({"../x": {"sha256": "0" * 64, "bytes": 1}})
    )
    with pytest.raises(BundleError, match="'../x' is absolute, contains"):
        load_bundle(bundle_copy)


def test_symlink_out_of_the_bundle_refused(tmp_path, bundle_copy):
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps({"root": None, "paths": [f"{i}" for i in range(8)]}))
    (bundle_copy / "items.json").unlink()
    os.symlink(outside, bundle_copy / "items.json")
    edit_manifest(bundle_copy, lambda m: None)
    with pytest.raises(BundleError, match="items.json: resolves outside the bundle"):
        load_bundle(bundle_copy)


def test_newer_format_refused(bundle_copy):
    edit_manifest(bundle_copy, lambda m: m.update(format_version=2))
    with pytest.raises(BundleError, match="format_version 2 is newer than this tool reads"):
        load_bundle(bundle_copy)


def test_not_a_bundle(tmp_path, bundle_copy):
    edit_manifest(bundle_copy, lambda m: m.update(format="something-else"))
    with pytest.raises(BundleError, match="not an SSL Studio bundle"):
        load_bundle(bundle_copy)
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(BundleError, match="not a bundle"):
        load_bundle(tmp_path / "x.txt")
    with pytest.raises(BundleError, match="no such bundle"):
        load_bundle(tmp_path / "nope")


def test_unlisted_referenced_file_refused(bundle_copy):
    edit_manifest(bundle_copy, lambda m: m["files"].pop("classifier.safetensors"))
    with pytest.raises(BundleError, match="names classifier.safetensors but lists no sha256"):
        load_bundle(bundle_copy)


def _custom_domain_model(path) -> None:
    m = onnx.load(path)
    m.graph.node.append(helper.make_node("Magic", ["features"], ["extra"], domain="com.evil"))
    onnx.save(m, path)


def test_custom_operator_refused_even_when_hashed(bundle_copy):
    _custom_domain_model(bundle_copy / "model.onnx")
    rehash(bundle_copy)
    with pytest.raises(BundleError, match="model.onnx: operator 'Magic' is in the custom domain"):
        load_bundle(bundle_copy)


def test_external_data_refused_even_when_hashed(bundle_copy):
    m = onnx.load(bundle_copy / "model.onnx")
    onnx.save_model(
        m,
        bundle_copy / "model.onnx",
        save_as_external_data=True,
        location="w.bin",
        size_threshold=0,
    )
    rehash(bundle_copy)
    with pytest.raises(BundleError, match="model.onnx: tensor .* external file"):
        load_bundle(bundle_copy)


def test_malformed_classifier_refused(bundle_copy):
    p = bundle_copy / "classifier.safetensors"
    p.write_bytes((1 << 30).to_bytes(8, "little") + p.read_bytes()[8:])
    rehash(bundle_copy)
    with pytest.raises(BundleError, match="classifier.safetensors: header length"):
        load_bundle(bundle_copy)


def test_classifier_with_wrong_tensors_refused(bundle_copy):
    from safetensors.numpy import save

    (bundle_copy / "classifier.safetensors").write_bytes(
        save({"weight": np.ones((3, 16), np.float32), "bias": np.ones(3, np.float32)})
    )
    rehash(bundle_copy)
    with pytest.raises(BundleError, match=r"expected F32\[2, 16\] and F32\[2\] for 2 classes"):
        load_bundle(bundle_copy)


def test_malformed_backbone_header_refused(bundle_copy):
    p = bundle_copy / "backbone.safetensors"
    p.write_bytes(p.read_bytes()[:-4])  # tensors no longer tile the data
    rehash(bundle_copy)
    with pytest.raises(BundleError, match="backbone.safetensors: tensors cover"):
        load_bundle(bundle_copy)


def test_pickled_embeddings_refused(bundle_copy):
    np.save(bundle_copy / "embeddings.npy", np.array([object()] * 8), allow_pickle=True)
    rehash(bundle_copy)
    with pytest.raises(BundleError, match="embeddings.npy: holds Python objects"):
        load_bundle(bundle_copy)


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (lambda m: m.update(embedding_dim=8), r"expected \(M, 8\) float32"),
        (lambda m: m["index"].update(count=9), "holds 8 rows, manifest says 9"),
        (lambda m: m["input"].update(layout="NHWC"), "input.layout is 'NHWC'"),
        (lambda m: m["input"].update(size=2), "input.size"),
        (lambda m: m["onnx"].update(output="logits"), "expected input 'images' and output"),
        (lambda m: m["classifier"].update(kind="mlp"), "kind 'mlp'"),
        (
            lambda m: m["input"].update(normalisation={"kind": "macenko"}),
            "normalisation.kind is 'macenko'.*update the tool",
        ),
        (
            lambda m: m["input"].update(
                normalisation={"kind": "reinhard", "mean": [1, 2, 3], "std": [1, 0, 1]}
            ),
            "normalisation.std must be > 0",
        ),
    ],
)
def test_inconsistent_manifest_refused(bundle_copy, edit, words):
    edit_manifest(bundle_copy, edit)
    with pytest.raises(BundleError, match=words):
        load_bundle(bundle_copy)


def _first_shared(m):
    return next(iter(m["onnx"]["weights"]["initializers"]))


def _rename_tensor(m):
    m["onnx"]["weights"]["initializers"][_first_shared(m)] = "no.such.tensor"


def _drop_shared(m):
    m["onnx"]["weights"]["initializers"].pop(_first_shared(m))


def _add_shared(m):
    m["onnx"]["weights"]["initializers"]["not.in.model"] = _first_shared(m)


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (_rename_tensor, "backbone.safetensors: has no tensor 'no.such.tensor'"),
        (_drop_shared, "keeps its data in an external file"),  # never opened by path
        (_add_shared, "'not.in.model' is kept in the weights file, the model disagrees"),
        (
            lambda m: m["onnx"]["weights"].update(initializers=[1]),
            "initializers must map names to names",
        ),
    ],
)
def test_shared_weights_that_do_not_match_refused(bundle_copy, edit, words):
    edit_manifest(bundle_copy, edit)
    with pytest.raises(BundleError, match=words):
        load_bundle(bundle_copy)


def test_unnormalised_embeddings_refused(bundle_copy):
    np.save(bundle_copy / "embeddings.npy", 2 * np.load(bundle_copy / "embeddings.npy"))
    rehash(bundle_copy)
    with pytest.raises(BundleError, match="not L2-normalised"):
        load_bundle(bundle_copy)


def test_zip_bomb_bounded(tmp_path, bundle_dir):
    with pytest.raises(BundleError, match="add up to more than 1000 bytes"):
        load_bundle(zip_bundle(bundle_dir, tmp_path / "b.zip"), max_total_bytes=1000)


def test_zip_without_manifest_refused(tmp_path):
    with zipfile.ZipFile(tmp_path / "x.zip", "w") as zf:
        zf.writestr("a/manifest.json", "{}")
        zf.writestr("b/manifest.json", "{}")
    with pytest.raises(BundleError, match="no manifest.json at the top or in one top folder"):
        load_bundle(tmp_path / "x.zip")
