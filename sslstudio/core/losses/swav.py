"""SwAV: swapped prediction of equal-partition cluster assignments.

"we compute a code from an augmented version of the image and predict this code from other
augmented versions of the same image." Codes come from the Sinkhorn-Knopp algorithm, which
spreads each batch evenly over the prototypes ("the equipartition constraint") so that the
trivial solution — every image in one cluster — is excluded.

- [0] SwAV, Caron et al. 2020, https://arxiv.org/abs/2006.09882 (sec. 3.1, Algorithm 1)
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn


@torch.no_grad()
def sinkhorn(scores: Tensor, epsilon: float = 0.05, iterations: int = 3) -> Tensor:
    """Soft codes ``Q`` ``(B, K)`` for prototype scores ``(B, K)`` (cosine similarities).

    Alternately rescales prototypes (each gets 1/K of the mass) and samples (each gets 1/B),
    ending with samples, so every row of the result sums exactly to 1 and every column to about
    B/K (exactly in the limit of many iterations).
    """
    if epsilon <= 0:
        raise ValueError(f"epsilon must be > 0, got {epsilon}")
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    # in log space: exp(s / eps) overflows or underflows float32 for small eps, and float64
    # is missing on some accelerators (Apple's MPS)
    log_q = scores.float().T / epsilon  # (K, B)
    k, b = log_q.shape
    for _ in range(iterations):
        log_q = log_q - torch.logsumexp(log_q, dim=1, keepdim=True) - math.log(k)  # rows: 1/K
        log_q = log_q - torch.logsumexp(log_q, dim=0, keepdim=True) - math.log(b)  # cols: 1/B
    q = log_q.exp()
    return (q * b).T  # (B, K): each row a distribution over prototypes


class SwAVLoss(nn.Module):
    """Swapped prediction over all views.

    Args:
        temperature: τ of the softmax over prototype scores (paper: 0.1).
        epsilon: Sinkhorn entropy weight ε (paper: 0.05).
        iterations: Sinkhorn iterations (paper: 3).

    Raises:
        ValueError: for a non-positive temperature or epsilon, or fewer than 1 iteration.
    """

    def __init__(
        self, temperature: float = 0.1, epsilon: float = 0.05, iterations: int = 3
    ) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if epsilon <= 0:
            raise ValueError(f"epsilon must be > 0, got {epsilon}")
        if iterations < 1:
            raise ValueError(f"iterations must be >= 1, got {iterations}")
        self.temperature, self.epsilon, self.iterations = temperature, epsilon, iterations

    def forward(
        self,
        scores: list[Tensor],
        n_global: int = 2,
        queue: Tensor | None = None,
        gather: Callable[[Tensor], tuple[Tensor, int]] | None = None,
    ) -> Tensor:
        """Args:
            scores: one ``(B, K)`` tensor of prototype scores per view, global views first.
            n_global: how many leading views get codes (the global ones).
            queue: optional ``(L, K)`` scores of earlier global embeddings; they join the
                Sinkhorn batch (more samples make the equipartition meaningful for small batches)
                but get no loss.
            gather: under ``--distributed``, every rank's rows of a tensor in rank order and
                where this rank's start: the codes are then computed over the global batch, and
                this rank's rows of them used. Every rank passes the same number of rows.

        Returns: the mean over (code view, other view) pairs of the cross-entropy between the
        code and the softmax of the other view's scores.
        """
        if len(scores) < 2 or not 1 <= n_global <= len(scores):
            raise ValueError(
                f"need >= 2 views and 1 <= n_global <= views, got {len(scores)}, {n_global}"
            )
        b = scores[0].shape[0]
        log_p = [torch.log_softmax(s.float() / self.temperature, dim=1) for s in scores]
        total, pairs = scores[0].new_zeros((), dtype=torch.float32), 0
        for i in range(n_global):
            s = scores[i].detach()
            start = 0  # where this rank's rows are among the codes
            if gather is not None:
                s, start = gather(s)
            if queue is not None:
                start += queue.shape[0]
                s = torch.cat([queue, s])  # (L + B, K): queued scores first
            q = sinkhorn(s, self.epsilon, self.iterations)[start : start + b]  # this view's codes
            for v, lp in enumerate(log_p):
                if v != i:
                    total = total - (q * lp).sum(dim=1).mean()
                    pairs += 1
        return total / pairs
