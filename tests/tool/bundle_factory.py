"""Spec-conformant bundles (docs/bundle-format.md) from a tiny torch conv net, for the tool's tests.

Torch is fine here (tests only): the point is a real ``torch.onnx.export`` graph, embeddings
computed by PyTorch on ``decode_resized`` pixels exactly as the exporter does, and a manifest
whose hashes are right, so each negative test breaks one thing on purpose (``rehash`` keeps
the hashes right after a deliberate change, so only the check under test can fire).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from sslstudio.imaging.decode import decode_resized, is_ignored_name

MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]


def tiny_net(dim: int = 16, seed: int = 0):
    import torch
    from torch import nn

    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, 2, 1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, dim, 3, 2, 1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )
    with torch.no_grad():  # non-trivial BN statistics, as a trained net would have
        net[1].running_mean.uniform_(-0.2, 0.2)
        net[1].running_var.uniform_(0.5, 2.0)
    return net.eval()


def onnx_bytes(net, size: int) -> bytes:
    import torch

    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            net,
            (torch.zeros(1, 3, size, size),),
            buf,
            input_names=["images"],
            output_names=["features"],
            dynamic_axes={"images": {0: "n"}, "features": {0: "n"}},
            opset_version=17,
            dynamo=False,
        )
    return buf.getvalue()


def image_paths(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and not is_ignored_name(p.name))


def torch_features(net, paths: list[Path], size: int) -> np.ndarray:
    """L2-normalised features of the training pixels, computed by PyTorch."""
    import torch

    px = np.stack([decode_resized(p, size, square=True) for p in paths]).astype(np.float32)
    x = (px / 255.0 - np.asarray(MEAN, np.float32)) / np.asarray(STD, np.float32)
    with torch.no_grad():
        f = net(torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))).numpy()
    return (f / np.linalg.norm(f, axis=1, keepdims=True)).astype(np.float32)


def make_bundle(
    dest: Path,
    images: Path,
    *,
    size: int = 32,
    dim: int = 16,
    classifier: bool = True,
    net: Any = None,
    shared_weights: bool = True,
) -> Path:
    """Write a bundle for every image under ``images``; classes are its subfolders. With
    ``shared_weights`` the model's initialisers that equal a tensor of backbone.safetensors are
    stored there as ONNX external data, as the exporter does (the rest stay in model.onnx)."""
    from safetensors.numpy import save as st_save

    net = net if net is not None else tiny_net(dim)
    dest.mkdir(parents=True, exist_ok=True)
    paths = image_paths(images)
    rel = [p.relative_to(images).as_posix() for p in paths]
    emb = torch_features(net, paths, size)
    (dest / "model.onnx").write_bytes(onnx_bytes(net, size))
    np.save(dest / "embeddings.npy", emb)
    items = {"root": str(images.resolve()), "paths": rel}
    (dest / "items.json").write_text(json.dumps(items))
    weights = {
        k: v.detach().numpy() for k, v in net.state_dict().items() if v.dtype.is_floating_point
    }
    (dest / "backbone.safetensors").write_bytes(st_save(weights))
    onnx_spec = {"file": "model.onnx", "opset": 17, "input": "images", "output": "features"}
    if shared_weights:
        import onnx

        from sslstudio.core.export.formats import share_weights

        model = onnx.load_from_string((dest / "model.onnx").read_bytes())
        shared = share_weights(model, dest / "backbone.safetensors")
        assert shared, "the factory's net shares no tensor with its state dict"
        (dest / "model.onnx").write_bytes(model.SerializeToString())
        onnx_spec["weights"] = {"file": "backbone.safetensors", "initializers": shared}
    classes = sorted({r.split("/")[0] for r in rel if "/" in r})
    clf = None
    if classifier and classes:
        labels = np.array([classes.index(r.split("/")[0]) for r in rel])
        centroids = np.stack([emb[labels == c].mean(0) for c in range(len(classes))])  # (C, D)
        weight = (10 * centroids).astype(np.float32)
        bias = np.linspace(-0.1, 0.1, len(classes)).astype(np.float32)
        (dest / "classifier.safetensors").write_bytes(st_save({"weight": weight, "bias": bias}))
        clf = {
            "file": "classifier.safetensors",
            "kind": "linear",
            "classes": classes,
            "input": "l2-normalised features",
            "cv_accuracy": None,
            "labelled": len(rel),
        }
    manifest = {
        "format": "sslstudio-bundle",
        "format_version": 1,
        "created": "2025-01-01T00:00:00Z",
        "sslstudio_version": "0.1.0",
        "method": "simclr",
        "backbone": "tiny_test_cnn",
        "small_stem": True,
        "embedding_dim": dim,
        "input": {
            "size": size,
            "channels": "RGB",
            "layout": "NCHW",
            "dtype": "float32",
            "scale": 1 / 255,
            "mean": MEAN,
            "std": STD,
            "resize": "decode_resized",
        },
        "onnx": onnx_spec,
        "index": {
            "embeddings": "embeddings.npy",
            "items": "items.json",
            "count": len(rel),
            "normalised": True,
            "absolute_paths": False,
        },
        "classifier": clf,
        "classes": classes,
        "family": {"file": None, "reason": "test net"},
        "training": {
            "images": len(rel),
            "folder_name": images.name,
            "steps": 0,
            "image_size": size,
            "preset": "natural",
            "checkpoint": "none",
        },
        "metrics": {},
        "files": {},
    }
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return rehash(dest)


def rehash(dest: Path, edit: Callable[[dict[str, Any]], None] | None = None) -> Path:
    """Recompute ``files`` for every file beside manifest.json, after ``edit(manifest)``."""
    manifest = json.loads((dest / "manifest.json").read_text())
    if edit:
        edit(manifest)
    manifest["files"] = {
        p.relative_to(dest).as_posix(): {
            "sha256": hashlib.sha256(p.read_bytes()).hexdigest(),
            "bytes": p.stat().st_size,
        }
        for p in sorted(dest.rglob("*"))
        if p.is_file() and not p.is_symlink() and p.name != "manifest.json"
    }
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return dest


def edit_manifest(dest: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    """Change the manifest only, hashes left as they are."""
    manifest = json.loads((dest / "manifest.json").read_text())
    edit(manifest)
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return dest


def zip_bundle(src: Path, out: Path, *, top: str | None = None, extra=()) -> Path:
    """Zip a bundle folder (flat, or under one top folder); ``extra``: (name, bytes) members."""
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(src.rglob("*")):
            if p.is_file():
                name = p.relative_to(src).as_posix()
                zf.write(p, f"{top}/{name}" if top else name)
        for name, data in extra:
            zf.writestr(name, data)
    return out


def copy_bundle(src: Path, dest: Path) -> Path:
    import shutil

    shutil.copytree(src, dest, symlinks=True)
    os.utime(dest)
    return dest
