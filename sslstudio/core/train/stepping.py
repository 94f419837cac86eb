"""What one training step does on the device, and the small facts the trainer asks about it."""

from __future__ import annotations

import contextlib
import math

import numpy as np
import torch

from sslstudio.config import RunConfig
from sslstudio.core.methods.base import Batch
from sslstudio.core.train.plan import revise
from sslstudio.errors import ConfigError


def optimise(
    method, opt, scaler, views, idx, amp_dtype, device, sync=None
) -> tuple[torch.Tensor, dict]:
    """Forward, backward and optimizer step on ``views``; returns (loss, extras) unread.
    ``sync(method)`` runs between backward and step (averaging gradients over ranks)."""
    method.train()
    with torch.autocast(device.type, dtype=amp_dtype) if amp_dtype else contextlib.nullcontext():
        loss, extra = method.training_step(Batch(views, torch.from_numpy(idx)))
    opt.zero_grad(set_to_none=True)
    (scaler.scale(loss) if scaler is not None else loss).backward()
    if sync is not None:
        sync(method)
    if scaler is not None:
        scaler.step(opt)
        scaler.update()
    else:
        opt.step()
    return loss, extra


def is_out_of_memory(exc: BaseException) -> bool:
    """Only the allocator's own error counts: other RuntimeErrors are never taken for OOM."""
    return isinstance(exc, torch.OutOfMemoryError)


def out_of_memory_plan(plan: dict, step: int, opt, device: torch.device) -> dict:
    """Half the batch after an out-of-memory step (called *outside* the ``except`` block, so
    the failed step's tensors are already freed); the learning rate follows the linear rule."""
    opt.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.empty_cache()
    bs = plan["batch_size"]
    if bs <= 2:
        raise ConfigError(
            f"out of memory on {device.type} even at batch size {bs}, the smallest a self-supervised "
            "step can use: choose a smaller backbone or image size, or train on the CPU"
        )
    return revise(plan, step, f"out of memory at batch {bs}", batch_size=bs // 2)


def prepare(cfg: RunConfig, cancel):
    """Scan the folder and fill the decode cache in the background, yielding ``Preparing``
    events; returns (index, decoded images). Raises ScanCancelled/CacheCancelled on ``cancel``."""
    from sslstudio.core.data.cache import build_cache
    from sslstudio.core.data.indexstore import open_index
    from sslstudio.core.data.scan import require_usable
    from sslstudio.core.train.background import in_background
    from sslstudio.core.transforms.views import default_cache_size
    from sslstudio.imaging.slides import SlideOptions
    from sslstudio.paths import cache_dir

    index = yield from in_background(
        "scan",
        lambda progress: open_index(
            cfg.data_root,
            cache_dir(),
            progress=progress,
            cancel=cancel,
            tiling=SlideOptions.of(cfg),
        ),
    )
    require_usable(index)
    side = cfg.cache_size or default_cache_size(cfg.image_size, median_short_side(index))
    data = yield from in_background(
        "decode",
        lambda progress: build_cache(index, side, cache_dir(), progress=progress, cancel=cancel),
    )
    return index, data


def settle_lag(device: torch.device) -> int:
    """Steps left unread on the device: 1 on a GPU (overlap), 0 where every op is synchronous."""
    return 1 if device.type == "cuda" else 0


def amp_dtype(cfg: RunConfig, device: torch.device) -> torch.dtype | None:
    if not cfg.amp or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def median_short_side(index) -> int | None:
    sizes = index.sizes(2000)  # headers of a sample are read lazily in a big folder
    return int(np.median(sizes.min(axis=1))) if len(sizes) else None


def skip_reasons(skipped) -> str:
    counts: dict[str, int] = {}
    for f in skipped:
        cat = f.reason.split(" (")[0].split(":")[0]
        counts[cat] = counts.get(cat, 0) + 1
    return ", ".join(f"{c} {r}" for r, c in sorted(counts.items(), key=lambda t: -t[1]))


def recommendation(
    selection: dict, final_score: float | None, final_path: str, best_path: str
) -> tuple[str, str]:
    """(checkpoint to use, why) from the best-by-signal record and the final score."""
    signal = selection.get("signal")
    if signal is None or final_score is None:
        return final_path, ""
    name = "probe kNN accuracy" if signal == "knn_top1" else "own-view retrieval (label-free)"
    ref = selection.get("reference", {}).get(signal)
    best, best_step = selection.get("best_score", -1.0), selection.get("best_step")
    # an earlier step is recommended only when it beats the end by more than the probe's noise
    # (two binomial standard errors on n probe images): the schedule ends at a low rate, and a
    # noisy probe would otherwise pick a lucky early step
    n = max(1, selection.get("n", 1))
    noise = 2 * math.sqrt(max(final_score * (1 - final_score), 1e-4) / n)
    use_best = best > final_score + noise and best_path
    path, score = (best_path, best) if use_best else (final_path, final_score)
    where = f"step {best_step}" if use_best else "the final step"
    why = f"{where} scores best on {name}: {score:.3f}"
    if not use_best and best > final_score:
        why = f"the final step: {score:.3f} on {name}, within the probe's noise of step {best_step}'s {best:.3f}"
    if ref is not None:
        why += f" (same network at random init: {ref:.3f})"
        if score <= ref:
            why = (
                f"not better than random init on {name} ({score:.3f} vs {ref:.3f} at step 0): "
                "train longer, or use the untrained network's features"
            )
    return path, why
