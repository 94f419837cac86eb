"""The pieces of an export bundle that speak other formats: ONNX, torchvision/timm state dicts,
and the Explore page's linear classifier (see docs/bundle-format.md).

Everything here runs on the CPU in float32: the ONNX graph is traced from exactly the function
the studio uses for features (``method.embed``), then checked against PyTorch before it is kept.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sslstudio.core.methods.base import Method
from sslstudio.errors import SSLStudioError

OPSET = 18  # >= 17 (LayerNormalization as one op); onnxruntime has run it since 1.14
INPUT_NAME, OUTPUT_NAME = "images", "features"
PARITY_LIMIT = 1e-4  # relative error ||onnx - torch|| / ||torch|| allowed per image
TIMM_NAMES = {"vit_tiny": "vit_tiny_patch16_224", "vit_small": "vit_small_patch16_224"}


class ExportError(SSLStudioError):
    """A bundle could not be written; nothing was left at the destination."""


class _Features(nn.Module):
    """``images -> method.embed(images)``: the graph holds what the studio's features hold
    (colourisation's lightness, CPC's patch grid), not only the backbone."""

    def __init__(self, method: Method) -> None:
        super().__init__()
        self.method = method

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.method.embed(images)


def write_onnx(
    method: Method, image_size: int, path: Path, weights: Path | None = None
) -> dict[str, Any]:
    """Write ``method.embed`` as an ONNX file with a dynamic batch.

    With ``weights`` (a safetensors file in the same folder), every initialiser whose bytes equal
    one of its tensors is stored as ONNX external data pointing into that file, so the bundle
    holds one copy of the weights; the rest (constants of the graph) stay inside the model.
    Returns the manifest's ``onnx`` entry, including the worst relative error measured against
    PyTorch on random images. Raises ``ExportError`` if the graph cannot be built or disagrees.
    """
    model = _export(method, image_size)
    shared = share_weights(model, weights) if weights is not None else {}
    path.write_bytes(model.SerializeToString())
    probe = torch.randn(3, 3, image_size, image_size, generator=torch.Generator().manual_seed(1))
    error = onnx_parity(method, str(path), probe)  # a path: external data resolves beside it
    if not error <= PARITY_LIMIT:
        raise ExportError(
            f"the ONNX model disagrees with PyTorch (relative error {error:.2e} > "
            f"{PARITY_LIMIT:g}); "
            "please report this with the run's config.json"
        )
    entry = {
        "file": path.name,
        "opset": OPSET,
        "input": INPUT_NAME,
        "output": OUTPUT_NAME,
        "max_relative_error": float(error),
    }
    if shared:
        entry["weights"] = {"file": weights.name, "initializers": shared}
    return entry


def _export(method: Method, image_size: int):
    """The checked ONNX ModelProto of ``method.embed``, initialisers inline."""
    import onnx

    wrapper = _Features(method).eval()
    example = torch.randn(2, 3, image_size, image_size, generator=torch.Generator().manual_seed(0))
    try:
        # the exporter warns about internals we cannot act on; pytest would turn them into errors
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                wrapper,
                (example,),
                None,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                opset_version=OPSET,
                dynamo=True,
                external_data=False,
                dynamic_shapes={"images": {0: torch.export.Dim("batch")}},
                verbose=False,
                # unfolded: the initialisers stay the state dict's own tensors (BatchNorm is not
                # folded into the convolutions), so they can point into backbone.safetensors;
                # onnxruntime folds them when it loads the model
                optimize=False,
            )
        model = _fold_constants(program.model_proto)
    except Exception as exc:  # many types, all meaning "this graph does not export"
        raise ExportError(
            f"the {type(method).name} model could not be converted to ONNX "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        ) from exc
    outside = sorted({o.domain for o in model.opset_import} - {"", "ai.onnx"})
    if outside or model.functions:
        raise ExportError(f"the ONNX graph uses non-standard operator domains {outside}")
    onnx.checker.check_model(model)
    return model


def _fold_constants(proto):
    """``proto`` with its constant subgraphs computed, and BatchNorm left alone.

    The unoptimised export computes each convolution's zero bias at run time (Shape, Expand,
    CastLike of the weight). A bias that is not an initialiser stops onnxruntime fusing
    BatchNorm and the activation into the convolution: 3.4x slower on ResNet-18
    (bench/onnx_weights.py). Folded, those biases are small initialisers of their own and the
    weights are still the state dict's tensors."""
    from onnxscript import ir, optimizer

    model = ir.serde.deserialize_model(proto)
    optimizer.fold_constants(model)
    optimizer.remove_unused_nodes(model)
    return ir.serde.serialize_model(model)


def share_weights(model, weights: Path) -> dict[str, str]:
    """Point ``model``'s float initialisers that equal a tensor of ``weights`` (safetensors, byte
    for byte, same shape) at that tensor's bytes; returns {initialiser: tensor name}."""
    import onnx
    from onnx import numpy_helper

    raw = weights.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    header.pop("__metadata__", None)
    where = {}
    for name, spec in header.items():
        start, end = (8 + n + o for o in spec["data_offsets"])
        key = (spec["dtype"], tuple(spec["shape"]), hashlib.sha256(raw[start:end]).digest())
        where.setdefault(key, (name, start, end - start))
    shared: dict[str, str] = {}
    for init in model.graph.initializer:
        if (
            init.data_type != onnx.TensorProto.FLOAT
            or init.data_location == onnx.TensorProto.EXTERNAL
        ):
            continue
        arr = np.ascontiguousarray(numpy_helper.to_array(init), dtype="<f4")
        found = where.get(("F32", arr.shape, hashlib.sha256(arr.tobytes()).digest()))
        if found is None:
            continue
        name, offset, length = found
        init.ClearField("raw_data")
        init.ClearField("float_data")
        init.data_location = onnx.TensorProto.EXTERNAL
        for key, value in (("location", weights.name), ("offset", offset), ("length", length)):
            entry = init.external_data.add()
            entry.key, entry.value = key, str(value)
        shared[init.name] = name
    return shared


def onnx_parity(method: Method, model: bytes | str, images: torch.Tensor) -> float:
    """Worst per-image ``||onnx - torch|| / ||torch||`` on normalised ``images`` (N, 3, S, S)."""
    import onnxruntime as ort

    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    got = sess.run([OUTPUT_NAME], {INPUT_NAME: images.numpy().astype(np.float32)})[0]
    with torch.no_grad():
        want = method.embed(images).float().numpy()
    num = np.linalg.norm(got - want, axis=1)
    den = np.maximum(np.linalg.norm(want, axis=1), 1e-12)
    return float((num / den).max())


@dataclass(frozen=True)
class FamilyFile:
    """The backbone in its family's own layout, or why there is none."""

    file: str | None
    tensors: dict[str, torch.Tensor]
    entry: dict[str, Any]  # the manifest's ``family`` value


def family_file(method: Method) -> FamilyFile:
    """torchvision ResNet / timm ViT state dict when the backbone has that exact shape."""
    bb = method.backbone
    info = bb.info
    if type(method).embed is not Method.embed:
        return _none(
            f"the {type(method).name} method computes features with more than the backbone's "
            "own output (a transformed input, pooled patch features): use model.onnx, which "
            "includes that step"
        )
    if info.family == "torchvision-resnet":
        if bb.small_stem:
            return _none(
                "no torchvision file: this run used the small-image stem (3x3 conv, no "
                "max-pool; on by default for images of 64 px or less), which no torchvision "
                f"{info.name} has. Use model.onnx or backbone.safetensors, or train with "
                "Small-image stem off (--small-stem off) for a file torchvision loads"
            )
        return _torchvision_resnet(bb.body, info.name, info.feature_dim)
    if info.family == "timm-vit" and info.name in TIMM_NAMES:
        return _timm_vit(bb.body, info.name)
    return _none(
        f"{info.name} is SSL Studio's own network: no standard library model has this shape; "
        "use model.onnx or backbone.safetensors"
    )


def not_asked(family: FamilyFile) -> FamilyFile:
    """The manifest's entry for a family file that fits but was not written (one copy of the
    weights by default): where it would load, and how to ask for it."""
    return FamilyFile(
        None,
        {},
        {
            "file": None,
            "available": family.file,
            "loads_into": family.entry.get("loads_into"),
            "reason": f"not written: {family.file} would be a second copy of the weights. Export "
            "with --family-formats (or tick the Export page's family-format box) to get it",
        },
    )


def _none(reason: str) -> FamilyFile:
    return FamilyFile(None, {}, {"file": None, "reason": reason})


def _torchvision_resnet(body: nn.Module, arch: str, dim: int) -> FamilyFile:
    tensors = {k: v.detach().cpu().contiguous() for k, v in body.state_dict().items()}
    # the backbone has no classifier (fc is Identity). An all-zero fc makes strict=True loading
    # work without inventing predictions: every logit is 0 until the user replaces it.
    tensors["fc.weight"] = torch.zeros(1000, dim)
    tensors["fc.bias"] = torch.zeros(1000)
    name = f"torchvision_{arch}.safetensors"
    return FamilyFile(
        name,
        tensors,
        {
            "file": name,
            "loads_into": f"torchvision.models.{arch}()",
            "strict": True,
            "note": "fc is all zeros (no ImageNet classes were learnt): set "
            "model.fc = torch.nn.Identity() to get the features",
        },
    )


def _timm_vit(body: nn.Module, name: str) -> FamilyFile:
    tensors = {k: v.detach().cpu().contiguous() for k, v in body.state_dict().items()}
    size = int(body.patch_embed.img_size[0])
    patch = int(body.patch_embed.patch_size[0])
    call = (
        f'timm.create_model("{TIMM_NAMES[name]}", pretrained=False, num_classes=0, '
        f"img_size={size}, patch_size={patch})"
    )
    file = f"timm_{TIMM_NAMES[name]}.safetensors"
    return FamilyFile(file, tensors, {"file": file, "loads_into": call, "strict": True})


def read_classifier(run: Path, dim: int) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
    """The Explore page's linear classifier of ``run`` (``explore/classifier.*``), or ``None``.

    Raises ``ExportError`` when the files exist but do not fit this backbone.
    """
    weights = run / "explore" / "classifier.safetensors"
    meta_path = weights.with_suffix(".json")
    if not weights.is_file() or not meta_path.is_file():
        return None
    from safetensors.torch import load_file

    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        found = load_file(str(weights))
    except Exception as exc:  # damaged JSON or safetensors header
        raise ExportError(
            f"the classifier in {weights.parent} is damaged ({type(exc).__name__}): "
            "train it again on the Explore page, or delete that folder to export without it"
        ) from exc
    w, b = found.get("weight"), found.get("bias")
    classes = meta.get("classes") if isinstance(meta, dict) else None
    if (
        w is None
        or b is None
        or not isinstance(classes, list)
        or w.ndim != 2
        or tuple(b.shape) != (w.shape[0],)
        or w.shape != (len(classes), dim)
    ):
        shape = None if w is None else tuple(w.shape)
        raise ExportError(
            f"the classifier in {weights.parent} does not fit this model (weight {shape}, "
            f"{len(classes) if isinstance(classes, list) else '?'} classes, features {dim}-d): "
            "train it again on the Explore page, or delete that folder to export without it"
        )
    accuracy = meta.get("cv_accuracy")
    entry = {
        "kind": "linear",
        "classes": [str(c) for c in classes],
        "input": "l2-normalised features",
        "cv_accuracy": None if accuracy is None else float(accuracy),
        "labelled": int(meta.get("labelled", 0)),
    }
    tensors = {"weight": w.float().contiguous(), "bias": b.float().contiguous()}
    return tensors, entry
