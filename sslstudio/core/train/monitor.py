"""Collapse metrics on a fixed probe set: is the network still learning something?

- std x sqrt(d) of L2-normalised embeddings (SimSiam, Chen & He 2021, sec. 4.1): about 1 for
  spread-out embeddings, 0 when every image maps to the same point (complete collapse).
- RankMe (Garrido et al. 2023, https://arxiv.org/abs/2210.02885): exp of the entropy of the
  normalised singular values; drops to k when embeddings live in a k-dimensional subspace
  (dimensional collapse). Random networks already score high, so RankMe alone cannot say
  "worse than random init"; it only catches collapse.
- View retrieval (label-free quality): each probe image is shown as two mildly augmented views
  (fixed random parameters, so every measurement sees the same pixels); the score is the share
  of first views whose nearest second view is their own. Collapse scores ~1/N, a network that
  tells images apart scores high. The same network at step 0 (random init) gives the reference,
  so a run can say it is *worse than random init*.
- The verdict (core.train.verdict): the same probe under a colour/stain shift, beside random
  init with its noise; the recommendation and the plain-words verdict follow it, since the
  scores above are drawn from the training folder with its own colours.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from sslstudio.config import AugmentConfig
from sslstudio.core.data.cache import DecodedImages
from sslstudio.core.events import MonitorLogged
from sslstudio.core.maths.knn import knn_accuracy
from sslstudio.core.train.verdict import (
    colour_reliance,
    decide,
    judge,
    paired_noise,
    shifted_hits,
    verdict_words,
)
from sslstudio.core.transforms.views import augment_batch, centre_view, normalise

COLLAPSE_STD = 0.1  # below this std x sqrt(d) the embeddings have (nearly) collapsed to a point
RANK_SHARE = 0.05  # below this share of min(n, d) the embeddings have collapsed dimensionally


def std_sqrt_d(z: Tensor) -> float:
    """Mean per-dimension std of L2-normalised ``z`` ``(N, D)``, times sqrt(D)."""
    zn = F.normalize(z.float(), dim=1)
    return float(zn.std(dim=0).mean() * zn.shape[1] ** 0.5)


def rankme(z: Tensor, eps: float = 1e-7) -> float:
    """Effective rank of ``z`` ``(N, D)``: exp(entropy of singular values / their sum)."""
    s = torch.linalg.svdvals(z.double())
    p = s / s.sum().clamp(min=eps) + eps
    return float(torch.exp(-(p * torch.log(p)).sum()))


def collapse_warning(std: float, rank: float, n: int, d: int) -> str | None:
    """A user-facing warning, or None when the embeddings look healthy."""
    if std < COLLAPSE_STD:
        return (
            "complete collapse: all images map to nearly the same embedding "
            f"(std x sqrt(d) = {std:.3f})"
        )
    limit = max(2.0, RANK_SHARE * min(n, d))
    if rank < limit:
        return f"dimensional collapse: embeddings use about {rank:.1f} of {d} dimensions"
    return None


@torch.no_grad()
def probe_features(
    method: torch.nn.Module,
    data: DecodedImages,
    rows: np.ndarray,
    image_size: int,
    device,
    batch: int = 256,
) -> torch.Tensor:
    """Backbone features ``(len(rows), D)`` of cached images, centre view, eval mode."""
    was_training = method.training
    method.eval()
    out = []
    for i in range(0, len(rows), batch):
        x = torch.from_numpy(data.batch(rows[i : i + batch])).permute(0, 3, 1, 2).to(device)
        out.append(method.embed(centre_view(x, image_size)).float().cpu())
    method.train(was_training)
    return torch.cat(out)


def probe_augment(a: AugmentConfig) -> AugmentConfig:
    """A milder cousin of the run's augmentation: the proxy asks "same image?", not "same
    class?"."""
    return replace(
        a,
        crop_scale_min=max(a.crop_scale_min, 0.4),
        brightness=a.brightness / 2,
        contrast=a.contrast / 2,
        saturation=a.saturation / 2,
        hue=a.hue / 2,
        hed_sigma=a.hed_sigma / 2,
        grey_p=0.0,
        blur_p=0.0,
    )


@torch.no_grad()
def view_retrieval(
    method: torch.nn.Module,
    data: DecodedImages,
    rows: np.ndarray,
    augment: AugmentConfig,
    image_size: int,
    device,
    seed: int = 0,
    batch: int = 256,
) -> float:
    """Top-1 retrieval of each probe image's second view by its first (0..1)."""
    was_training = method.training
    method.eval()
    a, g = probe_augment(augment), torch.Generator().manual_seed(seed * 7919 + 17)
    first, second = [], []
    for i in range(0, len(rows), batch):
        x = (
            torch.from_numpy(data.batch(rows[i : i + batch])).permute(0, 3, 1, 2).to(device).float()
            / 255
        )
        for out in (first, second):
            out.append(
                F.normalize(
                    method.embed(normalise(augment_batch(x, a, image_size, g))).float(), dim=1
                ).cpu()
            )
    method.train(was_training)
    z1, z2 = torch.cat(first), torch.cat(second)
    hits = (z1 @ z2.T).argmax(dim=1) == torch.arange(len(z1))
    return float(hits.float().mean())


def run_probe(
    method,
    data: DecodedImages,
    rows: np.ndarray,
    labels: np.ndarray | None,
    image_size: int,
    device,
    step: int,
    augment: AugmentConfig | None = None,
    seed: int = 0,
    selection: dict | None = None,
    domain: str | None = None,
) -> MonitorLogged:
    """Collapse metrics, view retrieval when ``augment`` is given, and leave-one-out kNN with
    k <= 10 when labels exist, on the probe rows. With ``selection`` (the run's record, kept in
    its checkpoints) also the verdict against random init (core.train.verdict): step 0's
    answers are stored there, later probes are judged against them; ``domain`` (the preset)
    says where the verdict may decide (``verdict.UNVALIDATED``)."""
    z = probe_features(method, data, rows, image_size, device)
    s, r = std_sqrt_d(z), rankme(z)
    knn = None
    if labels is not None and len(rows) > 2:
        y = torch.from_numpy(labels[rows])
        knn = knn_accuracy(z, y, z, y, k=min(10, len(rows) - 1), exclude_self=True)
    ev = MonitorLogged(
        step=step,
        std_sqrt_d=s,
        rankme=r,
        embed_dim=z.shape[1],
        knn_top1=knn,
        view_top1=None
        if augment is None
        else view_retrieval(method, data, rows, augment, image_size, device, seed),
        # step 0 is the untrained network: its spread says nothing about the run yet
        warning=None if step == 0 else collapse_warning(s, r, z.shape[0], z.shape[1]),
    )
    if selection is None or len(rows) < 4:
        return ev
    where = (data, rows, labels, image_size, device, seed)
    return with_verdict(ev, z, method, *where, selection, domain)


def with_verdict(
    ev, z, method, data, rows, labels, image_size, device, seed, selection: dict, domain=None
):
    """``ev`` with the shifted score, and the verdict once step 0's answers are known; ``z``
    the rows' centre-view embeddings (the verdict's memory)."""
    hits = shifted_hits(method, data, rows, labels, image_size, device, seed, memory=z)
    shared = colour_reliance(method, data, rows, image_size, device, features=z)
    if ev.step == 0 and "shift_ref_hits" not in selection:
        selection["shift_ref_hits"] = [int(h) for h in hits]
        selection["colour_ref"] = [round(float(c), 3) for c in shared]
    ref_hits = np.asarray(selection.get("shift_ref_hits", []), float)
    colour_ref = np.asarray(selection.get("colour_ref", []), float)
    ev = replace(ev, shift_top1=float(hits.mean()))
    if ev.step == 0 or len(ref_hits) != len(hits) or len(colour_ref) != len(hits):
        return ev  # random init itself, or another probe set
    ref, noise = float(ref_hits.mean()), paired_noise(hits, ref_hits, seed)
    gain, gain_noise = float(shared.mean() - colour_ref.mean()), paired_noise(shared, colour_ref)
    sign = decide(judge(ev.shift_top1, ref, noise), gain, gain_noise, domain)
    words = verdict_words(sign, ev.shift_top1, ref, noise, labels is not None, gain, domain)
    return replace(ev, shift_ref=ref, shift_noise=noise, verdict_sign=sign, verdict=words)
