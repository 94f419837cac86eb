"""2-D maps of embeddings (PCA at once; UMAP when umap-learn is installed) and k-means clusters.

PCA runs on the L2-normalised features (the geometry neighbours use) through a randomised
low-rank SVD: ~0.2 s for 100k x 512 on two cores. UMAP is an optional extra because it pulls
numba and scikit-learn (~100 MB); it runs in the background and replaces the PCA map when done.
"""

from __future__ import annotations

import threading

import numpy as np
import torch

from sslstudio.core.maths.clustering import kmeans_pp_seeds, spherical_kmeans


def pca_2d(unit: np.ndarray, seed: int = 0) -> np.ndarray:
    """``(N, 2)`` float32 coordinates: the first two principal components."""
    n = len(unit)
    if n == 0:
        return np.zeros((0, 2), np.float32)
    x = torch.from_numpy(np.ascontiguousarray(unit, np.float32))
    mean = x.mean(dim=0, keepdim=True)
    if n < 3:
        return np.zeros((n, 2), np.float32)
    torch.manual_seed(seed)  # pca_lowrank's random projection: the same map every time
    q = min(6, n - 1, x.shape[1])
    _, _, v = torch.pca_lowrank(x - mean, q=q, center=False)
    coords = (x - mean) @ v[:, :2]  # (N, 2)
    # sign convention: the heavier tail on the positive side, so maps do not flip between runs
    signs = torch.sign((coords**3).sum(dim=0))
    coords = coords * torch.where(signs == 0, torch.ones_like(signs), signs)
    out = np.zeros((n, 2), np.float32)
    out[:, : coords.shape[1]] = coords.numpy()
    return out


def umap_available() -> bool:
    try:
        import umap  # noqa: F401
    except ImportError:
        return False
    return True


def umap_2d(
    unit: np.ndarray, seed: int = 0, cancel: threading.Event | None = None
) -> np.ndarray | None:
    """UMAP coordinates (cosine metric), or None when cancelled before it finished."""
    import umap

    if cancel is not None and cancel.is_set():
        return None
    reducer = umap.UMAP(
        n_components=2, metric="cosine", random_state=seed, n_neighbors=min(15, len(unit) - 1)
    )
    coords = reducer.fit_transform(np.asarray(unit, np.float32))
    if cancel is not None and cancel.is_set():
        return None
    return np.asarray(coords, np.float32)


def kmeans_labels(unit: np.ndarray, k: int, seed: int = 0, iterations: int = 20) -> np.ndarray:
    """Cluster index per row (spherical k-means on the unit sphere); k is clipped to [1, N]."""
    n = len(unit)
    if n == 0:
        return np.zeros(0, np.int64)
    k = max(1, min(k, n))
    g = torch.Generator().manual_seed(seed)
    x = torch.from_numpy(np.ascontiguousarray(unit, np.float32))
    seeds = kmeans_pp_seeds(x[:200_000], k, g)  # a sample is plenty to seed from
    _, labels = spherical_kmeans(x, k, iterations, g, init=seeds)
    return labels.numpy().astype(np.int64)
