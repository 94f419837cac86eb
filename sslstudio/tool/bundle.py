"""Load an SSL Studio bundle (docs/bundle-format.md) from a folder or a .zip, verified.

Every file the manifest lists is checked for size and sha256 before use, and what the tool uses
is exactly the bytes that were hashed (model, embeddings, items, classifier are read once into
memory), so nothing can change between the check and the load. A zip is read in place: only
the names the manifest lists are opened, so a member called ``../../x`` is never written
anywhere. Nothing is unpickled; every refusal is a BundleError naming the file and the problem.
"""

from __future__ import annotations

import json
import math
import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sslstudio.imaging.stain import NORMALISATIONS, normalise_tiles
from sslstudio.tool.onnxcheck import OnnxCheckError, inspect_onnx
from sslstudio.tool.sources import BundleError, Folder, Source, Zip, check_relative
from sslstudio.tool.tensors import TensorFileError, parse_safetensors, read_npy, tensor

__all__ = ["Bundle", "BundleError", "Classifier", "InputSpec", "load_bundle"]

FORMAT = "sslstudio-bundle"
FORMAT_VERSION = 1
MAX_MANIFEST_BYTES = 16 << 20
MAX_TOTAL_BYTES = 16 << 30  # a zip's declared sizes bound what is read; this bounds the sum
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class InputSpec:
    """Pixels are ``(uint8 * scale - mean) / std`` of ``decode_resized(path, size)``, NCHW."""

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    scale: float = 1 / 255
    # per-tile colour normalisation before scale/mean/std (sslstudio.imaging.stain): its kind
    # and Reinhard's Lab targets; "none" for bundles that state none
    normalisation: str = "none"
    norm_mean: tuple[float, ...] = ()
    norm_std: tuple[float, ...] = ()

    def normalise(self, pixels: np.ndarray) -> np.ndarray:
        """``(N, S, S, 3)`` uint8 decoded pixels under the bundle's colour normalisation."""
        if self.normalisation == "none":
            return pixels
        return normalise_tiles(pixels, self.normalisation, self.norm_mean, self.norm_std)


@dataclass(frozen=True)
class Classifier:
    """``probs = softmax(normalize(f) @ weight.T + bias)`` over ``classes``."""

    weight: np.ndarray  # (C, D) float32
    bias: np.ndarray  # (C,) float32
    classes: tuple[str, ...]

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """(N, D) L2-normalised features -> (N, C) probabilities (rows sum to 1)."""
        logits = features @ self.weight.T + self.bias  # (N, C)
        logits = logits - logits.max(axis=1, keepdims=True)  # exp never overflows
        e = np.exp(logits)
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


@dataclass(frozen=True)
class Bundle:
    source: str
    manifest: dict[str, Any]
    input: InputSpec
    onnx_model: bytes
    onnx_input: str
    onnx_output: str
    embeddings: np.ndarray  # (M, D) float32, rows L2-normalised, read-only
    paths: tuple[str, ...]
    items_root: str | None
    classifier: Classifier | None
    model_version: str  # method-backbone-<sha256 prefix of model.onnx>: names predictions
    # initialisers model.onnx stores as external data in the bundle's weights file, by name
    onnx_weights: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[1])

    @property
    def count(self) -> int:
        return int(self.embeddings.shape[0])


def load_bundle(path: str | os.PathLike[str], *, max_total_bytes: int = MAX_TOTAL_BYTES) -> Bundle:
    """Read and verify the bundle at ``path`` (a folder holding manifest.json, or a .zip)."""
    where = Path(path)
    if where.is_dir():
        src: Source = Folder(where)
    elif where.is_file() and zipfile.is_zipfile(where):
        src = Zip(where)
    elif where.is_file():
        raise BundleError(f"{where}: not a bundle (a folder with manifest.json, or a .zip of one)")
    else:
        raise BundleError(f"{where}: no such bundle")
    try:
        return _load(src, max_total_bytes)
    finally:
        src.close()


def _load(src: Source, max_total: int) -> Bundle:
    manifest = _manifest(src)
    files = _listed_files(src, manifest)
    if sum(size for size, _ in files.values()) > max_total:
        raise BundleError(f"{src.name}: the files listed add up to more than {max_total} bytes")
    onnx_spec = _section(manifest, "onnx", src)
    index = _section(manifest, "index", src)
    clf_spec = manifest.get("classifier")
    needed = {
        "onnx": _name(onnx_spec, "file", src),
        "emb": _name(index, "embeddings", src),
        "items": _name(index, "items", src),
    }
    if clf_spec is not None:
        needed["clf"] = _name(_section(manifest, "classifier", src), "file", src)
    weights_spec = _optional_files(manifest, onnx_spec, needed, src)
    for name in needed.values():
        if name not in files:
            raise BundleError(f"{src.name}: manifest names {name} but lists no sha256 for it")
    dim = manifest.get("embedding_dim")
    if not isinstance(dim, int) or isinstance(dim, bool) or dim < 1:
        raise BundleError(f"{src.name}/manifest.json: embedding_dim must be a positive integer")
    spec = _input_spec(manifest, src)  # cheap checks first: hashing a large bundle takes seconds
    used = {needed[k] for k in ("onnx", "emb", "items", "clf", "weights") if k in needed}
    data: dict[str, bytes] = {}
    for name, (size, digest) in sorted(files.items()):
        content = src.verified(name, size, digest, keep=name in used)
        if content is not None:
            data[name] = content
        elif name.endswith(".safetensors"):
            src.check_safetensors_header(name, size)
    model = data[needed["onnx"]]
    external = {}
    if weights_spec is not None:
        external = _onnx_weights(data[needed["weights"]], weights_spec, needed["weights"], src)
    in_name, out_name = _check_onnx(model, onnx_spec, needed["onnx"], src, frozenset(external))
    embeddings = _embeddings(data[needed["emb"]], index, dim, needed["emb"], src)
    root, paths = _items(data[needed["items"]], len(embeddings), needed["items"], src)
    classifier = None
    if clf_spec is not None:
        classifier = _classifier(data[needed["clf"]], clf_spec, dim, needed["clf"], src)
    version = "-".join(
        [
            str(manifest.get("method", "model")),
            str(manifest.get("backbone", "onnx")),
            files[needed["onnx"]][1][:12],
        ]
    )
    return Bundle(
        src.name,
        manifest,
        spec,
        model,
        in_name,
        out_name,
        embeddings,
        paths,
        root,
        classifier,
        version,
        external,
    )


def _optional_files(
    manifest: dict[str, Any], onnx_spec: dict[str, Any], needed: dict[str, str], src: Source
) -> dict[str, Any] | None:
    """Adds the weights file model.onnx reads (when it shares one) and the family file to
    ``needed``; returns the ``onnx.weights`` section or None."""
    weights_spec = onnx_spec.get("weights")
    if weights_spec is not None:
        weights_spec = _section(onnx_spec, "weights", src)
        needed["weights"] = _name(weights_spec, "file", src)
    family = manifest.get("family")
    if isinstance(family, dict) and family.get("file") is not None:
        needed["family"] = _name(family, "file", src)  # hashed, not read: the tool never uses it
    return weights_spec


def _onnx_weights(
    data: bytes, spec: dict[str, Any], name: str, src: Source
) -> dict[str, np.ndarray]:
    """{initialiser: array} for the ONNX initialisers kept in the weights file (read-only views
    of its verified bytes); onnxruntime is handed them instead of opening the file itself."""
    wanted = spec.get("initializers")
    if not isinstance(wanted, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in wanted.items()
    ):
        raise BundleError(
            f"{src.name}/manifest.json: onnx.weights.initializers must map names to names"
        )
    try:
        entries = parse_safetensors(data, len(data))
        missing = sorted(set(wanted.values()) - set(entries))
        if missing:
            raise TensorFileError(f"has no tensor {missing[0]!r}, which model.onnx reads")
        return {init: tensor(data, entries[t]) for init, t in wanted.items()}
    except TensorFileError as e:
        raise BundleError(f"{src.name}/{name}: {e}") from e


def _manifest(src: Source) -> dict[str, Any]:
    raw = src.read_small("manifest.json", MAX_MANIFEST_BYTES)
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise BundleError(f"{src.name}/manifest.json: not valid JSON ({e})") from e
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BundleError(f"{src.name}/manifest.json: not an SSL Studio bundle manifest")
    version = manifest.get("format_version")
    major = version if isinstance(version, int) and not isinstance(version, bool) else None
    if isinstance(version, str) and re.fullmatch(r"\d+(\.\d+)*", version):
        major = int(version.split(".")[0])
    if major is None:
        raise BundleError(f"{src.name}/manifest.json: format_version {version!r} is not a number")
    if major > FORMAT_VERSION:
        raise BundleError(
            f"{src.name}/manifest.json: format_version {version} is newer than this tool reads "
            f"({FORMAT_VERSION}); update sslstudio-tool"
        )
    return manifest


def _listed_files(src: Source, manifest: dict[str, Any]) -> dict[str, tuple[int, str]]:
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise BundleError(f"{src.name}/manifest.json: 'files' must map file names to hashes")
    out = {}
    for name, entry in files.items():
        check_relative(name, src.name)
        size = entry.get("bytes") if isinstance(entry, dict) else None
        digest = entry.get("sha256") if isinstance(entry, dict) else None
        if not isinstance(size, int) or size < 0 or not _SHA256.fullmatch(str(digest)):
            raise BundleError(f"{src.name}/manifest.json: files[{name!r}] needs sha256 and bytes")
        out[name] = (size, str(digest))
    return out


def _section(manifest: dict[str, Any], key: str, src: Source) -> dict[str, Any]:
    value = manifest.get(key)
    if not isinstance(value, dict):
        raise BundleError(f"{src.name}/manifest.json: '{key}' must be an object")
    return value


def _name(section: dict[str, Any], key: str, src: Source) -> str:
    return check_relative(section.get(key), src.name)


def _input_spec(manifest: dict[str, Any], src: Source) -> InputSpec:
    where = f"{src.name}/manifest.json: input"
    spec = manifest.get("input")
    if not isinstance(spec, dict):
        raise BundleError(f"{where} must be an object")
    size, mean, std = spec.get("size"), spec.get("mean"), spec.get("std")
    scale = spec.get("scale", 1 / 255)
    if not isinstance(size, int) or not 8 <= size <= 4096:
        raise BundleError(f"{where}.size must be an integer in [8, 4096], got {size!r}")
    for key, want in (("channels", "RGB"), ("layout", "NCHW"), ("dtype", "float32")):
        if spec.get(key, want) != want:
            raise BundleError(f"{where}.{key} is {spec.get(key)!r}; this tool reads {want!r}")
    triples = [mean, std]
    if not all(isinstance(t, list) and len(t) == 3 and all(map(_finite, t)) for t in triples):
        raise BundleError(f"{where}.mean and .std must be three numbers each")
    if min(std) <= 0 or not _finite(scale) or scale <= 0:
        raise BundleError(f"{where}: std and scale must be > 0")
    m, s = [float(v) for v in mean], [float(v) for v in std]
    kind, n_mean, n_std = _normalisation(spec.get("normalisation"), where)
    return InputSpec(
        size, (m[0], m[1], m[2]), (s[0], s[1], s[2]), float(scale), kind, n_mean, n_std
    )


def _normalisation(spec: Any, where: str) -> tuple[str, tuple[float, ...], tuple[float, ...]]:
    if spec is None:
        return "none", (), ()
    kind = spec.get("kind") if isinstance(spec, dict) else None
    if kind not in NORMALISATIONS or kind == "none":
        raise BundleError(
            f"{where}.normalisation.kind is {kind!r}; this tool knows "
            f"{', '.join(n for n in NORMALISATIONS if n != 'none')}: update the tool"
        )
    mean, std = spec.get("mean"), spec.get("std")
    if not all(isinstance(t, list) and len(t) == 3 and all(map(_finite, t)) for t in (mean, std)):
        raise BundleError(f"{where}.normalisation.mean and .std must be three numbers each")
    if min(std) <= 0:
        raise BundleError(f"{where}.normalisation.std must be > 0")
    return kind, tuple(float(v) for v in mean), tuple(float(v) for v in std)


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _check_onnx(
    model: bytes, spec: dict[str, Any], name: str, src: Source, supplied: frozenset[str]
) -> tuple[str, str]:
    try:
        info = inspect_onnx(model, supplied)
    except OnnxCheckError as e:
        raise BundleError(f"{src.name}/{name}: {e}") from e
    if info.external != supplied:
        odd = sorted(info.external ^ supplied)[0]
        raise BundleError(
            f"{src.name}/{name}: the manifest says initialiser {odd!r} is kept in the weights "
            "file, the model disagrees"
        )
    want_in, want_out = spec.get("input", "images"), spec.get("output", "features")
    if want_in not in info.inputs or want_out not in info.outputs:
        raise BundleError(
            f"{src.name}/{name}: expected input {want_in!r} and output {want_out!r}; the model "
            f"has inputs {info.inputs} and outputs {info.outputs}"
        )
    return str(want_in), str(want_out)


def _embeddings(data: bytes, index: dict[str, Any], dim: int, name: str, src: Source):
    try:
        emb = read_npy(data)
    except TensorFileError as e:
        raise BundleError(f"{src.name}/{name}: {e}") from e
    count = index.get("count")
    if emb.dtype != np.dtype("<f4") or emb.ndim != 2 or emb.shape[1] != dim:
        raise BundleError(
            f"{src.name}/{name}: expected (M, {dim}) float32, got {emb.shape} {emb.dtype}"
        )
    if count != emb.shape[0]:
        raise BundleError(f"{src.name}/{name}: holds {emb.shape[0]} rows, manifest says {count}")
    norms = np.einsum("md,md->m", emb, emb)  # (M,) squared norms; one pass, no copy of emb
    if not np.isfinite(norms).all():
        raise BundleError(f"{src.name}/{name}: holds NaN or infinite values")
    if not np.allclose(norms, 1.0, atol=1e-3):
        if index.get("normalised", True):
            raise BundleError(f"{src.name}/{name}: rows are not L2-normalised as the manifest says")
        emb = emb / np.sqrt(np.maximum(norms, 1e-24))[:, None]
    return emb


def _items(data: bytes, count: int, name: str, src: Source) -> tuple[str | None, tuple[str, ...]]:
    try:
        items = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise BundleError(f"{src.name}/{name}: not valid JSON ({e})") from e
    paths = items.get("paths") if isinstance(items, dict) else None
    root = items.get("root") if isinstance(items, dict) else None
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise BundleError(f"{src.name}/{name}: 'paths' must be a list of strings")
    if root is not None and not isinstance(root, str):
        raise BundleError(f"{src.name}/{name}: 'root' must be null or a string")
    if len(paths) != count:
        raise BundleError(f"{src.name}/{name}: {len(paths)} paths for {count} embeddings")
    return root, tuple(paths)


def _classifier(data: bytes, spec: dict[str, Any], dim: int, name: str, src: Source) -> Classifier:
    where = f"{src.name}/{name}"
    classes = spec.get("classes")
    if spec.get("kind", "linear") != "linear":
        raise BundleError(f"{where}: classifier kind {spec.get('kind')!r} is not 'linear'")
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        raise BundleError(f"{src.name}/manifest.json: classifier.classes must list class names")
    try:
        entries = parse_safetensors(data, len(data))
        if set(entries) != {"weight", "bias"}:
            raise TensorFileError(f"holds {sorted(entries)}; a classifier is weight and bias")
        w, b = entries["weight"], entries["bias"]
        c = len(classes)
        if (w.dtype, w.shape, b.dtype, b.shape) != ("F32", (c, dim), "F32", (c,)):
            raise TensorFileError(
                f"weight {w.dtype}{list(w.shape)} and bias {b.dtype}{list(b.shape)}; expected "
                f"F32[{c}, {dim}] and F32[{c}] for {c} classes"
            )
        weight, bias = tensor(data, w), tensor(data, b)
    except TensorFileError as e:
        raise BundleError(f"{where}: {e}") from e
    if not (np.isfinite(weight).all() and np.isfinite(bias).all()):
        raise BundleError(f"{where}: holds NaN or infinite values")
    return Classifier(weight, bias, tuple(classes))
