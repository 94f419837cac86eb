"""A first-in-first-out queue of past embeddings: MoCo's negatives, NNCLR's support set.

"We maintain the dictionary as a queue of data samples: the encoded representations of the
current mini-batch are enqueued, and the oldest are dequeued." (MoCo, sec. 3.2)

- [0] MoCo, He et al. 2019, https://arxiv.org/abs/1911.05722
- [1] NNCLR, Dwibedi et al. 2021, https://arxiv.org/abs/2104.14548

The rows, the write pointer and the count of filled rows are buffers, so a checkpoint holds the
whole queue and a resumed run continues with the same contents. Nothing here reads a value back
from the device: pointer arithmetic stays on tensors.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class FeatureQueue(nn.Module):
    """``size`` rows of ``dim`` features, L2-normalised, starting as random unit vectors.

    Args:
        size: rows allocated (what a checkpoint stores).
        dim: feature width.

    Raises:
        ValueError: when ``size`` or ``dim`` is below 1.
    """

    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        if size < 1 or dim < 1:
            raise ValueError(f"a queue needs size >= 1 and dim >= 1, got {size} and {dim}")
        self.register_buffer("rows", F.normalize(torch.randn(size, dim), dim=1))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))
        self.register_buffer("filled", torch.zeros((), dtype=torch.long))
        self.length = size  # rows in use; ``cap`` lowers it for small folders

    def cap(self, length: int) -> None:
        """Use only the first ``length`` rows (at least 1, at most ``size``).

        A queue far longer than the folder would hold each image many times, among them its
        own older embedding as a "negative"; recomputed from the folder at every (re)start.
        """
        self.length = max(1, min(int(length), self.rows.shape[0]))

    def contents(self) -> Tensor:
        """The rows in use ``(length, dim)``; detached: the queue never receives gradients."""
        return self.rows[: self.length]

    def valid(self) -> Tensor:
        """``(length,)`` bool: rows that hold an enqueued embedding (not the random start)."""
        return torch.arange(self.length, device=self.rows.device) < self.filled

    @torch.no_grad()
    def enqueue(self, x: Tensor) -> None:
        """Write ``x`` ``(n, dim)`` over the oldest rows, wrapping round the end."""
        n, length = x.shape[0], self.length
        x = F.normalize(x.detach().to(self.rows.dtype), dim=1)
        if n >= length:  # the batch outnumbers the queue: keep its newest rows
            self.rows[:length] = x[-length:]
            self.ptr.zero_()
        else:
            ptr = self.ptr % length  # a shorter cap after a resume may leave ptr past the end
            idx = (ptr + torch.arange(n, device=x.device)) % length  # (n,) rows to overwrite
            self.rows.index_copy_(0, idx, x)
            self.ptr.copy_((ptr + n) % length)
        self.filled.copy_(torch.clamp(self.filled + n, max=length))
