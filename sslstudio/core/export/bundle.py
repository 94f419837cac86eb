"""Export a trained run as a bundle other programs can use without SSL Studio or torch.

The format is docs/bundle-format.md: manifest.json (with the sha256 of every other file),
model.onnx (whose weights are read from backbone.safetensors: one copy), the family file when
one fits and was asked for, the training folder's L2-normalised embeddings and their paths, and
the Explore page's classifier when there is one.

The bundle is built in a hidden temp folder beside the destination and moved in with one
``os.replace``: a crash, a cancel or a full disk leaves either the previous bundle or nothing,
never half a bundle someone might ship.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import math
import os
import shutil
import tempfile
import threading
import zipfile
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sslstudio import __version__
from sslstudio.core.data.cache import pid_alive
from sslstudio.core.export.formats import (
    ExportError,
    family_file,
    not_asked,
    read_classifier,
    write_onnx,
)
from sslstudio.core.train import checkpoints as ckpt
from sslstudio.core.train.device import pick_device
from sslstudio.core.train.runs import read_metrics
from sslstudio.core.transforms.views import MEAN, STD
from sslstudio.errors import as_write_error
from sslstudio.imaging import stain

FORMAT = "sslstudio-bundle"
FORMAT_VERSION = 1
Progress = Callable[[str, int, int], None]  # (stage, done, total)
STAGES = ("model", "onnx", "embedding", "writing")


class ExportCancelled(ExportError):
    """The user cancelled; nothing was written at the destination."""


def export_bundle(
    run: str | Path,
    out_dir: str | Path,
    *,
    checkpoint: str | Path = "latest",
    zip: bool = False,  # the CLI flag's name; shadows the builtin only in here
    absolute_paths: bool = False,
    family_formats: bool = False,
    folder: str | Path | None = None,
    device: str | None = None,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> Path:
    """Write the bundle of ``run`` to ``out_dir`` (or ``out_dir.zip`` with ``zip``); returns it.

    Args:
        checkpoint: ``"latest"``, a checkpoint name in the run (``final``, ``step_0000200``) or a
            checkpoint folder.
        absolute_paths: store the indexed folder's absolute path in items.json (paths stay
            relative to it). Off by default: folder names can identify people.
        family_formats: also write a torchvision/timm state dict where one fits (a 2nd copy).
        folder: images to index instead of the run's training folder.
        device: where to compute the embeddings (default: the run's choice); the ONNX model and
            the weights are always made on the CPU in float32.
    Raises:
        ExportError (ExportCancelled), CheckpointError, ConfigError, NoUsableImagesError.
    """
    from sslstudio.core.explore.embed import load_method

    def report(stage: str, done: int = 0, total: int = 1) -> None:
        if cancel is not None and cancel.is_set():
            raise ExportCancelled("export cancelled; nothing was written")
        if progress is not None:
            progress(stage, done, total)

    run_dir, ck_path = resolve_checkpoint(run, checkpoint)
    target = Path(out_dir).expanduser()
    if zip and target.suffix.lower() != ".zip":
        target = target.with_name(target.name + ".zip")
    _check_destination(target)
    report("model")
    method, cfg, ck_path = load_method(ck_path, device=torch.device("cpu"))
    meta = ckpt.read_meta(ck_path)
    index_root = _index_folder(folder or cfg.data_root)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stray(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{target.name}-{os.getpid()}-", dir=target.parent))
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp's 0700 would hide the bundle from colleagues
        family, classifier = _write_weights(method, run_dir, tmp, family_formats)
        report("onnx")
        weights = tmp / "backbone.safetensors"  # model.onnx reads its weights from there
        onnx_entry = write_onnx(method, cfg.image_size, tmp / "model.onnx", weights)

        report("embedding", 0, 1)
        method.to(pick_device(device or cfg.device)[0])
        emb = _embed_index(method, index_root, cfg.image_size, report, cancel)
        report("writing")
        feats = emb.features.astype(np.float32)
        feats /= np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)
        np.save(tmp / "embeddings.npy", feats, allow_pickle=False)
        root = str(Path(emb.root).resolve()) if absolute_paths else None
        _write_json(tmp / "items.json", {"root": root, "paths": emb.paths})

        facts = (method, meta, ck_path, run_dir)
        manifest = _manifest(cfg, facts, onnx_entry, feats, emb, classifier, family, absolute_paths)
        manifest["files"] = {p.name: _file_entry(p) for p in sorted(tmp.iterdir())}
        _write_json(tmp / "manifest.json", manifest)
        report("writing", 1, 1)
        _publish(tmp, target, zip)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        failure = as_write_error(exc)  # disk full, read-only: the destination is unchanged
        if failure is None:
            raise
        reason = os.strerror(failure.errno) if failure.errno else str(failure)
        raise ExportError(
            f"export to {target} failed: {reason}; nothing was written there"
        ) from exc
    return target


def _index_folder(folder: str | Path) -> Path:
    index_root = Path(folder).expanduser()
    if not index_root.is_dir():
        raise ExportError(
            f"the folder to index, {index_root}, does not exist: move it back, or index another "
            "folder of images (sslstudio export --folder DIR)"
        )
    return index_root


def _write_weights(method, run_dir: Path, tmp: Path, family_formats: bool):
    """backbone.safetensors, the family state dict where there is one and it was asked for, and
    the run's classifier (read before the slow steps: a misfit fails fast):
    (family, classifier or None)."""
    method.float()
    backbone = {k: v.detach().cpu().contiguous() for k, v in method.backbone.state_dict().items()}
    _save_tensors(tmp / "backbone.safetensors", backbone)
    family = family_file(method)
    if family.file is not None and not family_formats:
        family = not_asked(family)
    if family.file is not None:
        _save_tensors(tmp / family.file, family.tensors)
    classifier = read_classifier(run_dir, int(method.backbone.feature_dim))
    if classifier is not None:
        _save_tensors(tmp / "classifier.safetensors", classifier[0])
    return family, classifier


def _embed_index(method, index_root: Path, size: int, report, cancel):
    """The bundle's index: every image of ``index_root`` through the backbone, in float32."""
    from sslstudio.core.explore.embed import embed_folder

    try:
        with _full_float32():
            return embed_folder(
                method,
                index_root,
                size,
                progress=lambda d, n: report("embedding", d, n),
                cancel=cancel,
            )
    except Exception:
        if cancel is not None and cancel.is_set():
            raise ExportCancelled("export cancelled; nothing was written") from None
        raise


def _manifest(cfg, facts, onnx_entry, feats, emb, classifier, family, absolute_paths) -> dict:
    """manifest.json but its "files" (docs/bundle-format.md)."""
    method, meta, ck_path, run_dir = facts
    dim = int(method.backbone.feature_dim)
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "sslstudio_version": __version__,
        "method": cfg.method,
        "backbone": cfg.backbone,
        "small_stem": bool(method.backbone.small_stem),
        "embedding_dim": dim,
        "input": input_spec(cfg.image_size, cfg.input_norm),
        "onnx": onnx_entry,
        "index": {
            "embeddings": "embeddings.npy",
            "items": "items.json",
            "count": int(feats.shape[0]),
            "normalised": True,
            "absolute_paths": bool(absolute_paths),
        },
        "classifier": None
        if classifier is None
        else {"file": "classifier.safetensors", **classifier[1]},
        "classes": classifier[1]["classes"] if classifier else list(emb.classes),
        "family": family.entry,
        "training": {
            "images": int(meta.get("plan", {}).get("num_images", feats.shape[0])),
            "folder_name": Path(cfg.data_root).name,
            "steps": int(meta["step"]),
            "image_size": cfg.image_size,
            "preset": cfg.preset,
            "checkpoint": ck_path.name,
        },
        "metrics": run_metrics(run_dir, int(meta["step"])),
    }


def input_spec(size: int, input_norm: str = "none") -> dict[str, Any]:
    """How a reader turns an image file into the model's input (docs/bundle-format.md), exactly
    as ``sslstudio.imaging.decode.decode_resized`` does it: a torchvision pipeline that follows
    ``resample`` step by step gets the bundle's features to 1e-4 (tests/core/test_export.py);
    ``normalisation``, when present, is the per-tile stain normalisation training used."""
    normalisation = stain.describe(input_norm)
    return {
        **({"normalisation": normalisation} if normalisation else {}),
        "size": size,
        "channels": "RGB",
        "layout": "NCHW",
        "dtype": "float32",
        "scale": 1 / 255,
        "mean": list(MEAN),
        "std": list(STD),
        "resize": "sslstudio.imaging.decode.decode_resized(path, size, square=True): the centre "
        "square of side min(w, h), resampled to size x size by Pillow BICUBIC with "
        "reducing_gap=3.0 (see resample)",
        "resample": {
            "library": "Pillow",
            "exif_transpose": True,
            "filter": "PIL.Image.Resampling.BICUBIC",
            "reducing_gap": 3.0,
            "crop": "box=((w - s) / 2, (h - s) / 2, (w + s) / 2, (h + s) / 2), s = min(w, h), "
            "fractional, given to Image.resize(box=...) after converting to RGB",
            "jpeg_draft": f"JPEG files are opened with Image.draft(None, ({size}, {size})) first",
            "pre_reduce": f"images with min(w, h) >= {4 * size} are Image.reduce(k)-ed first, "
            f"k = min(w, h) // {2 * size}",
            "normalise": "(uint8 / 255 - mean) / std per channel, then HWC -> CHW",
        },
    }


def resolve_checkpoint(run: str | Path, which: str | Path = "latest") -> tuple[Path, Path]:
    """``(run folder, checkpoint folder)`` (see :func:`checkpoints.resolve`)."""
    return ckpt.resolve(run, which, not_a_run=ExportError)


def run_metrics(run: Path, step: int) -> dict[str, Any]:
    """The run's last loss and monitor values of the weights after ``step`` steps (finite
    numbers only): losses of steps before it (0-based), probes up to it (a probe at step k
    measures the weights after k steps, the final probe the final weights)."""
    out: dict[str, Any] = {}
    for row in read_metrics(run):
        at = row.get("step", math.inf)
        if at > step or (at == step and row.get("kind") != "monitor"):
            continue
        if row.get("kind") == "step" and _finite(row.get("loss")):
            out["final_loss"] = float(row["loss"])
        elif row.get("kind") == "monitor":
            out.update({k: float(v) for k, v in row.items() if k != "step" and _finite(v)})
    return out


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def read_manifest(bundle: str | Path) -> dict[str, Any]:
    """manifest.json of a bundle folder or zip, unverified (the tool's reader checks files)."""
    bundle = Path(bundle)
    try:
        if bundle.is_file():
            with zipfile.ZipFile(bundle) as zf:
                return json.loads(zf.read("manifest.json").decode("utf-8"))
        return json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise ExportError(f"{bundle} is not a readable bundle: {exc}") from exc


def describe_bundle(manifest: dict[str, Any]) -> list[str]:
    """Plain lines for the CLI and the Export page: what was written and what it can do."""
    lines = [f"{name}  {_human(info['bytes'])}" for name, info in sorted(manifest["files"].items())]
    idx, fam, cls = manifest["index"], manifest["family"], manifest["classifier"]
    n = int(idx["count"])
    lines.append(
        f"{n:,} image{'' if n == 1 else 's'} indexed, {manifest['embedding_dim']:,}-d features, "
        f"{manifest['input']['size']:,} px input"
    )
    onnx = manifest["onnx"]
    lines.append(
        "the ONNX model gives the features PyTorch gives (checked: they differ by at most "
        f"{onnx['max_relative_error']:.5%}; ONNX opset {onnx['opset']})"
    )
    if onnx.get("weights"):
        lines.append(
            f"model.onnx reads its weights from {onnx['weights']['file']}: keep the two files "
            "together"
        )
    if fam["file"]:
        lines.append(f"family format: {fam['file']} loads into {fam['loads_into']}")
    else:
        lines.append(f"no family format: {fam['reason']}")
    if cls:
        lines.append(f"classifier: {len(cls['classes'])} classes ({', '.join(cls['classes'][:6])})")
    return lines


def _human(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _check_destination(target: Path) -> None:
    """Refuse to overwrite anything but an earlier bundle (or an empty folder)."""
    if not target.exists():
        return
    if target.is_dir():
        if not any(target.iterdir()) or _is_bundle(target / "manifest.json"):
            return
    elif zipfile.is_zipfile(target):
        with zipfile.ZipFile(target) as zf:
            if "manifest.json" in zf.namelist():
                return
    raise ExportError(
        f"{target} already exists and is not an SSL Studio bundle: choose a new or empty folder"
    )


def _is_bundle(manifest: Path) -> bool:
    try:
        return json.loads(manifest.read_text(encoding="utf-8")).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def _remove_stray(target: Path) -> None:
    """Remove what a killed export to ``target`` left beside it (``.tmp-NAME-PID-*``, and
    ``.old-NAME-PID`` when ``NAME`` is back in place), unless that process still runs."""
    for p in target.parent.glob(f".*-{glob.escape(target.name)}-*"):
        kind, _, rest = p.name.partition("-")
        pid = rest[len(target.name) + 1 :].split("-", 1)[0].removesuffix(".zip")
        ours = kind in (".tmp", ".old") and rest.startswith(f"{target.name}-") and pid.isdigit()
        if not ours or pid_alive(int(pid)):
            continue
        if kind == ".old" and not target.exists():
            with contextlib.suppress(OSError):  # killed between the two renames: put it back
                os.replace(p, target)
                continue
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)


def _publish(tmp: Path, target: Path, as_zip: bool) -> None:
    """Move the finished bundle in place: previous one aside, new one in, old one removed."""
    mode = 0o666 & ~_umask()  # safetensors writes 0600: colleagues must read the bundle too
    for p in tmp.iterdir():
        os.chmod(p, mode)
        _fsync(p)
    source = tmp
    if as_zip:
        source = tmp.with_name(tmp.name + ".zip")
        # stored members are at the archive's root, manifest first, so a reader finds it at once
        with zipfile.ZipFile(source, "w", zipfile.ZIP_DEFLATED) as zf:
            for p in sorted(tmp.iterdir(), key=lambda p: (p.name != "manifest.json", p.name)):
                zf.write(p, p.name)
        _fsync(source)
    old = None
    if target.exists():
        old = target.with_name(f".old-{target.name}-{os.getpid()}")
        os.replace(target, old)
    try:
        os.replace(source, target)
    except OSError:
        if old is not None:
            os.replace(old, target)
        raise
    finally:
        if as_zip:
            source.unlink(missing_ok=True)
            shutil.rmtree(tmp, ignore_errors=True)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink(missing_ok=True)


def _save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    from safetensors.torch import save_file

    save_file(tensors, str(path), metadata={"format": "pt"})


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n", encoding="utf-8")


def _file_entry(path: Path) -> dict[str, Any]:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return {"sha256": h.hexdigest(), "bytes": path.stat().st_size}


@contextlib.contextmanager
def _full_float32() -> Iterator[None]:
    """No TF32 while the index is computed, so it matches what model.onnx gives a reader.

    cuDNN convolutions default to TF32 on Ampere and later GPUs. Measured on an H200 (resnet18,
    32 px, 256 images): with TF32 the stored features differ from the ONNX model's by up to
    2.3e-3 relative and 0.4 % of nearest neighbours change; without, 3e-6 and none. The flags
    are process-wide: a run training meanwhile computes in full float32 for that time (slower).
    """
    conv, matmul = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = conv, matmul


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it: put it straight back
    os.umask(mask)
    return mask


def _fsync(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())
