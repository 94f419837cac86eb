"""Spherical k-means on the training device: DeepCluster's pseudo-labels.

"We cluster the features [...] using k-means" (DeepCluster); DeepCluster-v2 clusters
L2-normalised projections and uses the centroids themselves as the classifier, so labels from
one round need no matching to the next. Cosine similarity replaces Euclidean distance here
because every point and centroid lies on the unit sphere, where the two order points alike.

- [0] DeepCluster, Caron et al. 2018, https://arxiv.org/abs/1807.05520
- [1] DeepCluster-v2, in SwAV, Caron et al. 2020, https://arxiv.org/abs/2006.09882 (appendix)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

_CHUNK = 65_536  # rows per similarity block: bounds memory at N x k for large folders


def assign(x: Tensor, centroids: Tensor) -> Tensor:
    """Index of the most similar centroid ``(N,)`` for each row of ``x`` ``(N, D)``."""
    return torch.cat([(part @ centroids.T).argmax(dim=1) for part in x.split(_CHUNK)])  # (N,)


@torch.no_grad()
def spherical_kmeans(
    x: Tensor,
    k: int,
    iterations: int = 10,
    generator: torch.Generator | None = None,
    init: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Cluster unit vectors.

    Args:
        x: ``(N, D)`` L2-normalised points (all-zero rows are allowed: points not seen yet).
        k: number of clusters, 1 <= k <= N.
        iterations: Lloyd iterations (assign, then move each centroid to its members' mean
            direction); an empty cluster keeps its previous centroid.
        generator: CPU generator choosing the k initial centroids among the points.
        init: ``(k,)`` indices of the initial centroids instead (e.g. k-means++ seeding).

    Returns:
        centroids ``(k, D)`` and labels ``(N,)`` (int64), both on ``x``'s device.

    Raises:
        ValueError: for k outside [1, N] or fewer than 1 iteration.
    """
    n = x.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, {n}] for {n} points, got {k}")
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    x = x.float()
    start = init if init is not None else torch.randperm(n, generator=generator)[:k]
    start = start.to(x.device)
    centroids = x[start].clone()  # (k, D)
    for _ in range(iterations):
        labels = assign(x, centroids)
        sums = torch.zeros_like(centroids).index_add_(0, labels, x)  # (k, D): members' sum
        counts = torch.bincount(labels, minlength=k)  # (k,)
        centroids = torch.where((counts > 0)[:, None], F.normalize(sums, dim=1), centroids)
    return centroids, assign(x, centroids)


@torch.no_grad()
def kmeans_pp_seeds(x: Tensor, k: int, generator: torch.Generator | None = None) -> Tensor:
    """k-means++ seeding on the sphere (Arthur & Vassilvitskii 2007): each next seed drawn with
    probability proportional to its squared cosine distance to the nearest seed so far."""
    n = x.shape[0]
    seeds = [int(torch.randint(n, (1,), generator=generator))]
    best = 1 - x @ x[seeds[0]]  # (N,) cosine distance to the nearest seed
    for _ in range(1, k):
        w = best.clamp(min=0).double() ** 2
        nxt = (
            int(torch.multinomial(w / w.sum(), 1, generator=generator))
            if w.sum() > 0
            else int(torch.randint(n, (1,), generator=generator))
        )
        seeds.append(nxt)
        best = torch.minimum(best, 1 - x @ x[nxt])
    return torch.tensor(seeds)
