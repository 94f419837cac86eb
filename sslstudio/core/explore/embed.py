"""Features for a folder from a trained run, and kNN evaluation beside random initialisation.

Embedding decodes each image once to ``image_size x image_size`` through the shared decode
path (the same pixels the exported tool sees), then runs the backbone in eval mode.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from sslstudio.config import RunConfig
from sslstudio.core.data.cache import DecodedImages, build_cache
from sslstudio.core.data.indexstore import open_index
from sslstudio.core.data.scan import SkippedFile, require_usable
from sslstudio.core.maths.knn import knn_accuracy
from sslstudio.core.methods import build_method
from sslstudio.core.methods.base import Method
from sslstudio.core.train import checkpoints as ckpt
from sslstudio.core.train.device import pick_device
from sslstudio.core.train.runs import load_run_config
from sslstudio.core.transforms.views import centre_view
from sslstudio.errors import CheckpointError, SSLStudioError
from sslstudio.imaging.stain import normalise_tiles
from sslstudio.paths import cache_dir


class EmbeddingCancelled(SSLStudioError):
    """The user cancelled embedding; nothing was stored."""


@dataclass
class Embeddings:
    features: np.ndarray  # (N, D) float32
    paths: list[str]  # relative to root, POSIX
    root: str
    labels: np.ndarray | None  # (N,) int64 class indices, when the folder has class subfolders
    classes: list[str]
    skipped: list[SkippedFile]

    def save(self, path: Path) -> None:
        """``.npz`` with features, paths (as text), labels; no pickles."""
        path = Path(path)
        extra = {"labels": self.labels} if self.labels is not None else {}
        tmp = path.with_name(f".tmp-{path.name}")
        try:
            with open(tmp, "wb") as fh:
                np.savez(
                    fh,
                    features=self.features,
                    paths=np.array(self.paths, dtype=str),
                    classes=np.array(self.classes, dtype=str),
                    root=np.array(self.root),
                    **extra,
                )
            tmp.replace(path)
        except OSError as exc:  # disk full, read-only: the file that was there stays
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise SSLStudioError(f"could not write {path}: {reason}; nothing was written") from exc


def load_method(
    run: str | Path, *, which: str = "latest", device: torch.device | None = None
) -> tuple[Method, RunConfig, Path]:
    """The trained method of a run folder (or of one checkpoint folder), in eval mode."""
    run, ck_path = ckpt.resolve(run, which)
    cfg = load_run_config(run)
    method = build_method(_no_weights(cfg))
    state, _, _ = ckpt.load_checkpoint(ck_path)
    if cfg.init_blend > 0 and ck_path.name != "init":
        state = ckpt.blend_with_init(state, _init_state(run), cfg.init_blend)
    try:  # config.json edited since: the network it builds is not the checkpoint's
        ckpt.load_model_state(method, state, ck_path)
    except CheckpointError as exc:
        raise CheckpointError(f"{exc} (does {run}/config.json still match its run?)") from exc
    method.eval()
    return method.to(device or pick_device(cfg.device)[0]), cfg, ck_path


def _init_state(run: Path) -> dict:
    """The run's step-0 weights (checkpoint ``init``), which init_blend blends features with."""
    path = run / "checkpoints" / "init"
    if not (path / "meta.json").is_file():
        raise CheckpointError(
            f"{run} blends its features with its step-0 weights (init_blend), but "
            f"{path} is missing: restore that folder, or set init_blend to 0 in config.json"
        )
    state, _, _ = ckpt.load_checkpoint(path)
    return state


def random_init_method(cfg: RunConfig) -> Method:
    """The same network as the run at step 0: same seed, same initial weights."""
    torch.manual_seed(cfg.seed)
    return build_method(cfg).eval()


def input_norm_of(method: Method) -> str:
    """The input normalisation the method was trained with (``"none"`` for one built elsewhere)."""
    return getattr(method, "input_norm", "none")


def _no_weights(cfg: RunConfig) -> RunConfig:
    from dataclasses import replace

    return replace(cfg, weights="")


def embed_folder(
    method: Method,
    folder: str | Path,
    image_size: int,
    *,
    batch: int = 256,
    progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
) -> Embeddings:
    index = open_index(folder, cache_dir())
    require_usable(index)
    data = build_cache(index, image_size, cache_dir())
    feats = [f for _, f in feature_batches(method, data, image_size, batch, progress, cancel)]
    return Embeddings(
        features=np.concatenate(feats),
        paths=data.relpaths(),
        root=str(index.root),
        labels=data.labels(),
        classes=index.classes,
        skipped=index.skipped + data.failed,
    )


@torch.no_grad()
def feature_batches(
    method: Method,
    data: DecodedImages,
    image_size: int,
    batch: int = 256,
    progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """``(first row, (b, D) float32 features)`` of the decoded images, in order, batch by batch."""
    device = next(method.parameters()).device
    method.eval()
    data = dataclasses.replace(data, input_norm=input_norm_of(method))
    n = len(data)
    for i in range(0, n, batch):
        if cancel is not None and cancel.is_set():
            raise EmbeddingCancelled("embedding cancelled")
        x = (
            torch.from_numpy(data.batch(np.arange(i, min(n, i + batch))))
            .permute(0, 3, 1, 2)
            .to(device)
        )
        yield i, method.embed(centre_view(x, image_size)).float().cpu().numpy()
        if progress is not None:
            progress(min(n, i + batch), n)


def knn_eval(
    method: Method,
    train_dir: str | Path,
    test_dir: str | Path | None,
    image_size: int,
    k: int = 200,
    temperature: float = 0.1,
) -> float:
    """Weighted kNN top-1: ``train_dir`` as memory, ``test_dir`` as queries; with no test folder,
    leave-one-out on ``train_dir`` with k <= 10."""
    mem = embed_folder(method, train_dir, image_size)
    if mem.labels is None:
        raise SSLStudioError(f"{train_dir} has no class subfolders: kNN evaluation needs labels")
    if test_dir is None:
        y = torch.from_numpy(mem.labels)
        f = torch.from_numpy(mem.features)
        return knn_accuracy(
            f, y, f, y, k=min(k, 10, len(y) - 1), temperature=temperature, exclude_self=True
        )
    qry = embed_folder(method, test_dir, image_size)
    if qry.labels is None or qry.classes != mem.classes:
        raise SSLStudioError(
            f"{test_dir} must have the same class subfolders as {train_dir}: {qry.classes} vs "
            f"{mem.classes}"
        )
    return knn_accuracy(
        torch.from_numpy(mem.features),
        torch.from_numpy(mem.labels),
        torch.from_numpy(qry.features),
        torch.from_numpy(qry.labels),
        k=k,
        temperature=temperature,
    )


@torch.no_grad()
def embed_files(
    method: Method, paths: list[str | Path], image_size: int
) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """Features of single image files (e.g. a query from outside the folder), decoded exactly
    as the folder's images are. Returns ``(features (n, D), [(path, reason) not decoded])``."""
    from sslstudio.imaging import decode as imaging

    arrays, ok, failed = [], [], []
    for p in paths:
        try:
            arrays.append(imaging.decode_resized(p, image_size))
            ok.append(p)
        except imaging.DecodeError as exc:
            failed.append((str(p), exc.reason))
    if not arrays:
        return np.zeros((0, 0), np.float32), failed
    device = next(method.parameters()).device
    pixels = normalise_tiles(np.stack(arrays), input_norm_of(method))
    x = torch.from_numpy(pixels).permute(0, 3, 1, 2).to(device)
    method.eval()
    return method.embed(centre_view(x, image_size)).float().cpu().numpy(), failed


def query_vector(checkpoint: str | Path, path: str | Path) -> np.ndarray:
    """The L2-normalised feature of one image file (a query from anywhere), from ``checkpoint``."""
    method, cfg, _ = load_method(checkpoint)
    feats, failed = embed_files(method, [path], cfg.image_size)
    if failed:
        raise SSLStudioError(f"cannot read {path}: {failed[0][1]}")
    f = feats[0]
    return (f / max(float(np.linalg.norm(f)), 1e-12)).astype(np.float32)
