"""A run's embeddings of a folder: computed once per (checkpoint, folder), kept beside the run.

Stored under ``RUN/explore/embeddings/<key>/`` as ``features.npy`` (memory-mapped on load, so
a million rows cost no RAM until touched) and ``items.json`` (paths relative to the folder,
labels, skipped files). The key hashes the folder's fingerprint (paths, sizes, mtimes), the
checkpoint's identity (name, step, weights file size and mtime) and the resolution: change
any of them and the old set is simply not found; the newest few sets are kept.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sslstudio.core.data.cache import CacheCancelled, build_cache
from sslstudio.core.data.indexstore import open_index
from sslstudio.core.data.scan import ImageIndex, ScanCancelled, require_usable
from sslstudio.core.explore.embed import EmbeddingCancelled
from sslstudio.core.train import checkpoints as ckpt
from sslstudio.core.train.runs import load_run_config
from sslstudio.errors import SSLStudioError
from sslstudio.imaging.slides import SlideOptions
from sslstudio.paths import cache_dir

FORMAT = 1
KEEP = 3  # embedding sets kept per run (a few checkpoints or folders side by side)


@dataclass
class RunEmbeddings:
    features: np.ndarray  # (N, D) float16 or float32, memory-mapped; raw backbone features
    paths: list[str]  # relative to root, POSIX
    root: str
    labels: np.ndarray | None  # (N,) class index from class subfolders, -1 = none
    classes: list[str]
    checkpoint: str
    key: str
    location: Path
    skipped: list[dict] = field(default_factory=list)  # {"path", "reason"}
    _unit: np.ndarray | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def dim(self) -> int:
        return int(self.features.shape[1])

    def unit(self) -> np.ndarray:
        """L2-normalised float32 rows (made once; cosine similarity is then a dot product)."""
        if self._unit is None:
            out = np.empty(self.features.shape, np.float32)
            for s in range(0, len(out), 65_536):
                block = np.asarray(self.features[s : s + 65_536], np.float32)
                norm = np.linalg.norm(block, axis=1, keepdims=True)
                out[s : s + 65_536] = block / np.maximum(norm, 1e-12)
            self._unit = out
        return self._unit

    def abspath(self, i: int) -> Path:
        return Path(self.root) / self.paths[i]


def checkpoint_identity(path: Path) -> str:
    meta = ckpt.read_meta(path)
    w = path / "model.safetensors"
    st = w.stat()
    return f"{path.name}|{meta.get('step')}|{st.st_size}|{st.st_mtime_ns}"


def _key(fingerprint: str, identity: str, image_size: int, dtype: str) -> str:
    text = f"{FORMAT}|{fingerprint}|{identity}|{image_size}|{dtype}"
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def store_dir(run: Path) -> Path:
    return Path(run) / "explore" / "embeddings"


def run_embeddings(*args, **kwargs) -> RunEmbeddings:
    """The embeddings of ``folder`` (default: the run's training folder), computed or reused.

    Arguments as :func:`_run_embeddings`. ``progress(stage, done, total)`` reports "scan"
    (total may be None while walking), "decode" and "embed"; ``cancel`` stops between batches,
    stores nothing and raises :class:`EmbeddingCancelled`.
    """
    try:
        return _run_embeddings(*args, **kwargs)
    except (ScanCancelled, CacheCancelled) as exc:
        raise EmbeddingCancelled("embedding cancelled") from exc


def _run_embeddings(
    run: str | Path,
    folder: str | Path | None = None,
    *,
    checkpoint: str | Path | None = None,
    dtype: str = "float32",
    batch: int = 256,
    progress: Callable[[str, int, int], None] | None = None,
    cancel: threading.Event | None = None,
    index: ImageIndex | None = None,
) -> RunEmbeddings:
    if dtype not in ("float16", "float32"):
        raise ValueError(f"dtype must be float16 or float32, got {dtype}")
    run = Path(run)
    cfg = load_run_config(run)
    folder = Path(folder or cfg.data_root)
    _, ck_path = ckpt.resolve(run, checkpoint)
    if index is None:
        index = open_index(
            folder,
            cache_dir(),
            tiling=SlideOptions.of(cfg),
            cancel=cancel,
            progress=(lambda d, t: progress("scan", d, t)) if progress else None,
        )
    require_usable(index)
    key = _key(index.fingerprint(), checkpoint_identity(ck_path), cfg.image_size, dtype)
    found = load(store_dir(run) / key)
    if found is not None:
        return found

    from sslstudio.core.explore.embed import feature_batches, load_method

    method, cfg, _ = load_method(ck_path)
    data = build_cache(
        index,
        cfg.image_size,
        cache_dir(),
        cancel=cancel,
        progress=(lambda d, t: progress("decode", d, t)) if progress else None,
    )
    n = len(data)
    base = store_dir(run)
    base.mkdir(parents=True, exist_ok=True)
    tmp = base / f".tmp-{key}-{os.getpid()}-{threading.get_ident()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        batches = feature_batches(
            method,
            data,
            cfg.image_size,
            batch,
            (lambda d, t: progress("embed", d, t)) if progress else None,
            cancel,
        )
        _write_features(tmp / "features.npy", batches, n, dtype)
        items = _items(index, data, ck_path, cfg.image_size)
        (tmp / "items.json").write_text(json.dumps(items), encoding="utf-8")
        final = base / key
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _prune(base)
    out = load(final)
    if out is None:  # pragma: no cover - we just wrote it
        raise SSLStudioError(f"embeddings written to {final} could not be read back")
    return out


def _write_features(path: Path, batches, n: int, dtype: str) -> None:
    """Stream ``(start, features)`` batches into an ``(n, D)`` .npy file on disk."""
    feats = None
    for start, f in batches:
        if feats is None:
            feats = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=(n, f.shape[1]))
        feats[start : start + len(f)] = f
    assert feats is not None
    feats.flush()
    del feats


def _items(index: ImageIndex, data, ck_path: Path, image_size: int) -> dict:
    """items.json: which image each row is, its label, and what was set aside and why."""
    labels = data.labels()
    return {
        "format": FORMAT,
        "root": str(index.root),
        "paths": data.relpaths(),
        "labels": None if labels is None else labels.tolist(),
        "classes": list(index.classes),
        "checkpoint": str(ck_path),
        "image_size": image_size,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "skipped": [{"path": s.path, "reason": s.reason} for s in index.skipped + data.failed],
    }


def load(location: Path) -> RunEmbeddings | None:
    """A stored set, or None when it is missing or damaged (it is then recomputed)."""
    try:
        items = json.loads((location / "items.json").read_text(encoding="utf-8"))
        feats = np.load(location / "features.npy", mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError):
        return None
    if items.get("format") != FORMAT or feats.ndim != 2 or len(feats) != len(items["paths"]):
        return None
    labels = items.get("labels")
    os.utime(location)  # most recently used: pruned last
    return RunEmbeddings(
        features=feats,
        paths=list(items["paths"]),
        root=items["root"],
        labels=None if labels is None else np.asarray(labels, np.int64),
        classes=list(items.get("classes", [])),
        checkpoint=items.get("checkpoint", ""),
        key=location.name,
        location=location,
        skipped=list(items.get("skipped", [])),
    )


def _prune(base: Path) -> None:
    sets = [p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")]
    sets.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    for old in sets[KEEP:]:
        shutil.rmtree(old, ignore_errors=True)
