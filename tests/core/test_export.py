"""The export bundle (docs/bundle-format.md): manifest and checksums, ONNX parity with PyTorch,
family state dicts that load strictly into torchvision / timm, privacy of paths, the classifier,
and that a failed or cancelled export leaves nothing half-written at the destination."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import zipfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from safetensors.numpy import save_file as save_numpy
from safetensors.torch import load_file

from sslstudio.core.explore.embed import load_method
from sslstudio.core.export import bundle as ex
from sslstudio.core.export.formats import ExportError, family_file
from sslstudio.core.transforms.presets import preset
from sslstudio.errors import CheckpointError
from sslstudio.imaging.decode import decode_resized
from tests.shapes import make_shapes_folder, tiny_config

REL_TOL = 1e-4


def make_trained_run(base: Path, **over) -> Path:
    """A tiny_cnn run at 16 px over 2 x 12 generated images (about a second on a CPU)."""
    from sslstudio.core.train.trainer import train

    folder = base / "shapes"
    if not folder.exists():
        make_shapes_folder(folder, per_class=12, size=24, shapes=("circle", "square"))
    run = base / over.pop("name", "run")
    over.setdefault("monitor_every", 0)
    for _ in train(tiny_config(folder, run, **over)):
        pass
    return run


@pytest.fixture(scope="module")
def run(tmp_path_factory, module_home) -> Path:
    return make_trained_run(tmp_path_factory.mktemp("export"))


@pytest.fixture(scope="module")
def bundle(run) -> Path:
    return ex.export_bundle(run, run.parent / "bundle")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _input(paths: list[Path], spec: dict) -> np.ndarray:
    """What a torch-free reader does with the manifest's input spec."""
    mean = np.array(spec["mean"], np.float32).reshape(1, 3, 1, 1)
    std = np.array(spec["std"], np.float32).reshape(1, 3, 1, 1)
    x = np.stack([decode_resized(p, spec["size"], square=True) for p in paths])  # (N, S, S, 3)
    x = x.transpose(0, 3, 1, 2).astype(np.float32) * np.float32(spec["scale"])
    return (x - mean) / std


def _rel_err(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.linalg.norm(a - b, axis=1) / np.linalg.norm(b, axis=1)


def test_manifest_lists_every_file_with_its_checksum(bundle, run):
    m = json.loads((bundle / "manifest.json").read_text())
    assert m["format"] == "sslstudio-bundle" and m["format_version"] == 1
    assert (m["method"], m["backbone"], m["small_stem"], m["embedding_dim"]) == (
        "simclr",
        "tiny_cnn",
        True,
        128,
    )
    on_disk = {p.name for p in bundle.iterdir()} - {"manifest.json"}
    assert (
        set(m["files"])
        == on_disk
        == {
            "model.onnx",
            "backbone.safetensors",
            "embeddings.npy",
            "items.json",
        }
    )
    for name, info in m["files"].items():
        assert info == {"sha256": _sha(bundle / name), "bytes": (bundle / name).stat().st_size}
    assert m["onnx"]["opset"] >= 17 and (m["onnx"]["input"], m["onnx"]["output"]) == (
        "images",
        "features",
    )
    assert m["input"]["size"] == 16 and m["input"]["scale"] == pytest.approx(1 / 255)
    assert m["index"] == {
        "embeddings": "embeddings.npy",
        "items": "items.json",
        "count": 24,
        "normalised": True,
        "absolute_paths": False,
    }
    assert m["classifier"] is None and m["classes"] == ["circle", "square"]
    assert m["family"]["file"] is None and "tiny_cnn" in m["family"]["reason"]
    t = m["training"]
    assert (t["images"], t["folder_name"], t["steps"], t["checkpoint"]) == (
        24,
        "shapes",
        6,
        "final",
    )
    assert np.isfinite(m["metrics"]["final_loss"])
    # nothing beside the folder's name: a bundle travels, the user's directory layout should not
    assert str(run.parent) not in (bundle / "manifest.json").read_text()


def test_paths_are_relative_by_default_and_embeddings_unit_norm(bundle, run):
    items = json.loads((bundle / "items.json").read_text())
    assert items["root"] is None and len(items["paths"]) == 24
    assert all(not Path(p).is_absolute() and ".." not in p for p in items["paths"])
    assert items["paths"][0] == "circle/circle_0000.png"
    assert str(run.parent) not in (bundle / "items.json").read_text()
    emb = np.load(bundle / "embeddings.npy", allow_pickle=False)
    assert emb.dtype == np.float32 and emb.shape == (24, 128)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)


def test_onnx_matches_pytorch_on_random_and_real_images(bundle, run):
    import onnx

    model = onnx.load(str(bundle / "model.onnx"))
    assert {o.domain for o in model.opset_import} <= {"", "ai.onnx"}
    assert not any(
        init.data_location == onnx.TensorProto.EXTERNAL for init in model.graph.initializer
    )
    sess = ort.InferenceSession(str(bundle / "model.onnx"), providers=["CPUExecutionProvider"])
    method, _, _ = load_method(run, device=torch.device("cpu"))
    # random images, at several batch sizes (the batch axis is dynamic, 1 included)
    for n in (1, 5):
        x = torch.randn(n, 3, 16, 16, generator=torch.Generator().manual_seed(n))
        got = sess.run(["features"], {"images": x.numpy()})[0]
        with torch.no_grad():
            want = method.embed(x).numpy()
        assert got.shape == (n, 128) and got.dtype == np.float32
        assert _rel_err(got, want).max() <= REL_TOL
    # the real files, decoded the way the manifest tells a torch-free reader to
    m = json.loads((bundle / "manifest.json").read_text())
    paths = json.loads((bundle / "items.json").read_text())["paths"]
    files = [run.parent / "shapes" / p for p in paths]
    x = _input(files, m["input"])
    got = sess.run(["features"], {"images": x})[0]
    with torch.no_grad():
        want = method.embed(torch.from_numpy(x)).numpy()
    assert _rel_err(got, want).max() <= REL_TOL
    # ... and those features are the bundle's index, with the same nearest neighbours
    unit = got / np.linalg.norm(got, axis=1, keepdims=True)
    stored = np.load(bundle / "embeddings.npy")
    assert _rel_err(unit, stored).max() <= REL_TOL
    sims_onnx, sims_stored = unit @ unit.T, stored @ stored.T
    np.fill_diagonal(sims_onnx, -np.inf)
    np.fill_diagonal(sims_stored, -np.inf)
    assert (sims_onnx.argmax(1) == sims_stored.argmax(1)).all()


def _torchvision_pipeline(spec: dict):
    """What a downstream torchvision user writes from the manifest's ``resample``, and nothing
    else: Pillow for the resize it names, torchvision for the rest."""
    from PIL import Image, ImageOps
    from torchvision import transforms

    r, size = spec["resample"], spec["size"]
    assert r["filter"] == "PIL.Image.Resampling.BICUBIC"

    def resize(im: Image.Image) -> Image.Image:
        im = ImageOps.exif_transpose(im)
        if min(im.size) >= 4 * size:  # "pre_reduce"
            im = im.reduce(min(im.size) // (2 * size))
        im = im.convert("RGB")
        w, h = im.size
        s = min(w, h)
        box = ((w - s) / 2, (h - s) / 2, (w + s) / 2, (h + s) / 2)
        return im.resize(
            (size, size), Image.Resampling.BICUBIC, box=box, reducing_gap=r["reducing_gap"]
        )

    return transforms.Compose(
        [
            transforms.Lambda(resize),
            transforms.PILToTensor(),
            transforms.Lambda(lambda t: t.float() * spec["scale"]),
            transforms.Normalize(spec["mean"], spec["std"]),
        ]
    )


def test_a_torchvision_pipeline_that_follows_the_manifest_gets_the_features(bundle, run):
    from PIL import Image

    m = json.loads((bundle / "manifest.json").read_text())
    pipeline = _torchvision_pipeline(m["input"])
    paths = json.loads((bundle / "items.json").read_text())["paths"]
    with_images = [Image.open(run.parent / "shapes" / p) for p in paths]
    x = torch.stack([pipeline(im) for im in with_images]).numpy()
    sess = ort.InferenceSession(str(bundle / "model.onnx"), providers=["CPUExecutionProvider"])
    got = sess.run(["features"], {"images": x})[0]
    unit = got / np.linalg.norm(got, axis=1, keepdims=True)
    np.testing.assert_allclose(unit, np.load(bundle / "embeddings.npy"), atol=1e-4)
    # bigger, non-square images, where the crop box and the reducing gap matter: the pipeline
    # still matches the studio's decoding, a plain Resize + CenterCrop does not
    from torchvision import transforms

    rng = np.random.default_rng(0)
    size = m["input"]["size"]
    naive = transforms.Compose(
        [
            transforms.Resize(size, transforms.InterpolationMode.BICUBIC),
            transforms.CenterCrop(size),
            transforms.PILToTensor(),
        ]
    )
    for w, h in ((203, 131), (77, 160)):
        smooth = rng.random((h // 8 + 1, w // 8 + 1, 3)) * 255
        im = Image.fromarray(smooth.astype(np.uint8)).resize((w, h), Image.Resampling.BILINEAR)
        path = Path(str(bundle) + f"-{w}x{h}.png")
        im.save(path)
        want = torch.from_numpy(decode_resized(path, size, square=True)).permute(2, 0, 1)
        assert torch.equal(pipeline.transforms[1](pipeline.transforms[0](Image.open(path))), want)
        assert not torch.equal(naive(Image.open(path).convert("RGB")), want)
        path.unlink()


def test_bundle_files_are_readable_by_others(bundle):
    mask = os.umask(0o022)
    os.umask(mask)
    for p in bundle.iterdir():  # safetensors alone would write 0600
        assert p.stat().st_mode & 0o777 == 0o666 & ~mask, p.name


def test_backbone_safetensors_reload_into_the_studio(bundle, run):
    from sslstudio.core.models.backbones import build_backbone

    method, _, _ = load_method(run, device=torch.device("cpu"))
    again = build_backbone(
        "tiny_cnn", small_stem=True, weights=str(bundle / "backbone.safetensors")
    ).eval()
    x = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(again(x), method.backbone(x))


def test_resnet18_family_file_loads_strictly_into_torchvision(tmp_path_factory, module_home):
    import torchvision

    base = tmp_path_factory.mktemp("resnet")
    run = make_trained_run(
        base,
        backbone="resnet18",
        small_stem="off",
        image_size=32,
        max_steps=1,
        augment=preset("natural", 32),
    )
    one = ex.export_bundle(run, base / "one-copy")
    m1 = json.loads((one / "manifest.json").read_text())
    # by default one copy of the weights: model.onnx reads them from backbone.safetensors
    assert m1["family"]["file"] is None
    assert m1["family"]["available"] == "torchvision_resnet18.safetensors"
    assert "--family-formats" in m1["family"]["reason"]
    assert sorted(p.name for p in one.iterdir() if p.suffix == ".safetensors") == [
        "backbone.safetensors"
    ]
    weights = (one / "backbone.safetensors").stat().st_size
    assert weights > 40e6 and (one / "model.onnx").stat().st_size < 0.02 * weights
    shared = m1["onnx"]["weights"]
    assert shared["file"] == "backbone.safetensors" and len(shared["initializers"]) >= 100
    import onnx

    graph = onnx.load(str(one / "model.onnx"), load_external_data=False).graph
    inits = {i.name for i in graph.initializer}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    # nothing computed at run time feeds a convolution, so onnxruntime fuses BatchNorm into it
    # (an unfolded zero bias made the tool 3.4x slower: bench/onnx_weights.py)
    assert len(convs) == 20 and all(set(n.input[1:]) <= inits for n in convs)
    assert not {n.op_type for n in graph.node} & {"Expand", "CastLike"}
    out = ex.export_bundle(run, base / "bundle", family_formats=True)
    m = json.loads((out / "manifest.json").read_text())
    fam = m["family"]
    assert fam["file"] == "torchvision_resnet18.safetensors" and fam["strict"] is True
    assert fam["loads_into"] == "torchvision.models.resnet18()"
    net = torchvision.models.resnet18()
    net.load_state_dict(load_file(str(out / fam["file"])), strict=True)
    assert not net.fc.weight.any() and not net.fc.bias.any()  # no invented predictions
    net.fc = torch.nn.Identity()
    net.eval()
    method, _, _ = load_method(run, device=torch.device("cpu"))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(net(x), method.embed(x), rtol=1e-5, atol=1e-5)
    assert m["onnx"]["max_relative_error"] <= REL_TOL
    # the shared-weights model, opened from its path and through the tool (bytes in memory)
    import onnxruntime as ort

    from sslstudio.tool.bundle import load_bundle
    from sslstudio.tool.inference import Model

    want = method.embed(x).detach().numpy()
    by_path = ort.InferenceSession(str(one / "model.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(by_path.run(None, {"images": x.numpy()})[0], want, atol=1e-4)
    tool = Model(load_bundle(one))
    got = tool.session.run(None, {"images": x.numpy()})[0]
    np.testing.assert_allclose(got, want, atol=1e-4)


def _method(**over):
    from sslstudio.config import RunConfig
    from sslstudio.core.methods import build_method

    torch.manual_seed(0)
    return build_method(RunConfig(**over)).eval()


def test_vit_family_file_loads_strictly_into_timm():
    import timm

    method = _method(backbone="vit_tiny", image_size=16)
    fam = family_file(method)
    assert fam.file == "timm_vit_tiny_patch16_224.safetensors"
    assert "img_size=16, patch_size=4" in fam.entry["loads_into"]
    net = timm.create_model(
        "vit_tiny_patch16_224", pretrained=False, num_classes=0, img_size=16, patch_size=4
    ).eval()
    net.load_state_dict(fam.tensors, strict=True)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(net(x), method.embed(x), rtol=1e-5, atol=1e-5)


def test_no_family_file_for_a_small_stem_or_a_method_with_its_own_input_step():
    fam = family_file(_method(backbone="resnet18", image_size=32, small_stem="on"))
    assert fam.file is None and "--small-stem off" in fam.entry["reason"]
    assert "no torchvision file" in "\n".join(
        ex.describe_bundle(
            {
                "files": {},
                "index": {"count": 1},
                "family": fam.entry,
                "classifier": None,
                "embedding_dim": 8,
                "input": {"size": 32},
                "onnx": {"opset": 18, "max_relative_error": 0.0},
            }
        )
    )  # the Export page shows these lines
    fam = family_file(
        _method(backbone="resnet18", image_size=32, small_stem="off", method="colorization")
    )
    assert fam.file is None and "model.onnx" in fam.entry["reason"]


def test_classifier_absolute_paths_and_zip(run, tmp_path):
    explore = run / "explore"
    explore.mkdir(exist_ok=True)
    w = np.random.default_rng(0).standard_normal((2, 128)).astype(np.float32)
    save_numpy(
        {"weight": w, "bias": np.array([0.5, -0.5], np.float32)},
        str(explore / "classifier.safetensors"),
    )
    meta = {"kind": "linear", "classes": ["circle", "square"], "cv_accuracy": 0.75, "labelled": 24}
    (explore / "classifier.json").write_text(json.dumps(meta))
    try:
        out = ex.export_bundle(run, tmp_path / "b", zip=True, absolute_paths=True)
    finally:
        for p in explore.iterdir():
            p.unlink()
        explore.rmdir()
    assert out == tmp_path / "b.zip" and not (tmp_path / "b").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["b.zip"]  # no temp files left behind
    with zipfile.ZipFile(out) as zf:
        assert zf.namelist()[0] == "manifest.json"
        zf.extractall(tmp_path / "unzipped")
    b = tmp_path / "unzipped"
    m = ex.read_manifest(out)
    assert m == json.loads((b / "manifest.json").read_text())
    assert m["classifier"] == {
        "file": "classifier.safetensors",
        "kind": "linear",
        "classes": ["circle", "square"],
        "input": "l2-normalised features",
        "cv_accuracy": 0.75,
        "labelled": 24,
    }
    assert m["classes"] == ["circle", "square"]
    tensors = load_file(str(b / "classifier.safetensors"))
    assert set(tensors) == {"weight", "bias"} and tensors["weight"].dtype == torch.float32
    np.testing.assert_array_equal(tensors["weight"].numpy(), w)
    for name, info in m["files"].items():
        assert info["sha256"] == _sha(b / name)
    items = json.loads((b / "items.json").read_text())
    assert items["root"] == str((run.parent / "shapes").resolve()) and m["index"]["absolute_paths"]
    assert items["paths"][0] == "circle/circle_0000.png"
    lines = ex.describe_bundle(m)
    assert any(line.startswith("classifier: 2 classes") for line in lines)


def test_a_classifier_that_does_not_fit_is_refused(run, tmp_path):
    explore = run / "explore"
    explore.mkdir(exist_ok=True)
    save_numpy(
        {"weight": np.zeros((2, 7), np.float32), "bias": np.zeros(2, np.float32)},
        str(explore / "classifier.safetensors"),
    )
    (explore / "classifier.json").write_text(json.dumps({"kind": "linear", "classes": ["a", "b"]}))
    try:
        with pytest.raises(ExportError, match="does not fit"):
            ex.export_bundle(run, tmp_path / "b")
    finally:
        for p in explore.iterdir():
            p.unlink()
        explore.rmdir()
    assert list(tmp_path.iterdir()) == []


def test_a_failure_mid_export_leaves_the_previous_bundle_untouched(
    run, bundle, tmp_path, monkeypatch
):
    before = {p.name: _sha(p) for p in bundle.iterdir()}

    def broken(method, size, path, weights=None):
        path.write_bytes(b"half an onnx file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ex, "write_onnx", broken)
    with pytest.raises(ExportError, match="No space left on device; nothing was written"):
        ex.export_bundle(run, bundle)
    assert {p.name: _sha(p) for p in bundle.iterdir()} == before
    assert sorted(p.name for p in bundle.parent.iterdir() if p.name.startswith(".")) == []
    with pytest.raises(ExportError):
        ex.export_bundle(run, tmp_path / "new")
    assert list(tmp_path.iterdir()) == []


def test_cancel_writes_nothing_and_the_index_is_computed_without_tf32(run, tmp_path):
    cancel = threading.Event()
    stages, tf32 = [], []
    before = torch.backends.cudnn.allow_tf32

    def progress(stage, done, total):
        stages.append(stage)
        if stage == "embedding" and done > 0:  # inside the embedding loop
            tf32.append(torch.backends.cudnn.allow_tf32 or torch.backends.cuda.matmul.allow_tf32)
            cancel.set()

    with pytest.raises(ex.ExportCancelled):
        ex.export_bundle(run, tmp_path / "b", progress=progress, cancel=cancel)
    assert stages[:3] == ["model", "onnx", "embedding"] and list(tmp_path.iterdir()) == []
    assert tf32 == [False] and torch.backends.cudnn.allow_tf32 == before


def test_destination_and_checkpoint_choices(run, tmp_path):
    other = tmp_path / "notes"
    other.mkdir()
    (other / "thesis.txt").write_text("not a bundle")
    with pytest.raises(ExportError, match="not an SSL Studio bundle"):
        ex.export_bundle(run, other)
    assert (other / "thesis.txt").read_text() == "not a bundle"
    with pytest.raises(CheckpointError, match="choose one of: final"):
        ex.export_bundle(run, tmp_path / "b", checkpoint="step_9999999")
    run_dir, ck = ex.resolve_checkpoint(run, "final")
    assert (run_dir, ck) == (run, run / "checkpoints" / "final")
    assert ex.resolve_checkpoint(ck) == (run, ck)
    with pytest.raises(ExportError, match="not a run folder"):
        ex.export_bundle(tmp_path, tmp_path / "b")
