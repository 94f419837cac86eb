"""Weighted kNN classification of embeddings: the standard probe of representation quality.

Wu et al. 2018 (https://arxiv.org/abs/1805.01978), as used by DINO and lightly's benchmarks:
cosine similarity, the k nearest memory items vote with weight exp(sim / τ).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def knn_predict(
    memory: Tensor,
    memory_labels: Tensor,
    queries: Tensor,
    num_classes: int,
    k: int = 200,
    temperature: float = 0.1,
    exclude_self: bool = False,
    chunk: int = 1024,
) -> Tensor:
    """Predicted class per query: ``(Q,)`` int (arguments as :func:`knn_votes`)."""
    return knn_votes(
        memory, memory_labels, queries, num_classes, k, temperature, exclude_self, chunk
    ).argmax(1)


def knn_votes(
    memory: Tensor,
    memory_labels: Tensor,
    queries: Tensor,
    num_classes: int,
    k: int = 200,
    temperature: float = 0.1,
    exclude_self: bool = False,
    chunk: int = 1024,
) -> Tensor:
    """Each class's vote per query, ``(Q, num_classes)``: the sum of exp(sim / τ) over the k
    nearest memory items of that class.

    Args:
        memory: ``(M, D)`` features; memory_labels ``(M,)`` int.
        queries: ``(Q, D)``; with ``exclude_self`` the queries *are* the memory (leave-one-out).
    """
    mem = F.normalize(memory.float(), dim=1)
    k = min(k, mem.shape[0] - (1 if exclude_self else 0))
    if k < 1:
        raise ValueError("kNN needs at least 2 memory items")
    out = []
    for start in range(0, queries.shape[0], chunk):
        q = F.normalize(queries[start : start + chunk].float(), dim=1)
        sim = q @ mem.T  # (q, M) cosine similarities
        if exclude_self:
            idx = torch.arange(start, start + q.shape[0])
            sim[torch.arange(q.shape[0]), idx] = -float("inf")
        top, ix = sim.topk(k, dim=1)  # (q, k)
        weights = (top / temperature).exp()
        votes = torch.zeros(q.shape[0], num_classes)
        votes.scatter_add_(1, memory_labels[ix], weights)
        out.append(votes)
    return torch.cat(out)


def knn_accuracy(
    memory: Tensor,
    memory_labels: Tensor,
    queries: Tensor,
    query_labels: Tensor,
    k: int = 200,
    temperature: float = 0.1,
    exclude_self: bool = False,
) -> float:
    num_classes = int(max(memory_labels.max(), query_labels.max())) + 1
    pred = knn_predict(
        memory,
        memory_labels,
        queries,
        num_classes,
        k=k,
        temperature=temperature,
        exclude_self=exclude_self,
    )
    return float((pred == query_labels).float().mean())
