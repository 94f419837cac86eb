"""The trainer's batches: data order from (seed, epoch), gathered one step ahead on a thread.

Gathering a batch from the decoded cache (a fancy index into a memory map) and page-locking
it for the GPU copy are plain memory work that releases the GIL, so a single helper thread
prepares step k+1 while step k trains. The batch of a step depends only on (seed, step, plan),
never on timing: prefetching changes no result, and resume needs no loader state.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import torch

from sslstudio.core.data.cache import DecodedImages


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(n, generator=g).numpy()


class BatchLoader:
    """``get(step) -> (indices, uint8 (B, 3, H, W) CPU tensor)``, the next step already on its way.

    Args:
        data: the decoded images.
        seed: the run's seed (data order).
        batch_size, steps_per_epoch: the plan's; a batch is ``order[pos * B:(pos + 1) * B]``.
        pin: page-lock batches (CUDA: the host-to-device copy then runs asynchronously).
        prefetch: gather the next step's batch on a helper thread.
    """

    def __init__(
        self,
        data: DecodedImages,
        seed: int,
        batch_size: int,
        steps_per_epoch: int,
        *,
        pin: bool = False,
        prefetch: bool = True,
    ) -> None:
        self.data, self.seed, self.bs, self.spe, self.pin = (
            data,
            seed,
            batch_size,
            steps_per_epoch,
            pin,
        )
        self._orders: dict[int, np.ndarray] = {}
        self._pool = (
            ThreadPoolExecutor(1, thread_name_prefix="sslstudio-batches") if prefetch else None
        )
        self._ahead: tuple[int, Future] | None = None

    def indices(self, step: int) -> np.ndarray:
        epoch, pos = divmod(step, self.spe)
        order = self._orders.get(epoch)
        if order is None:
            order = epoch_order(self.seed, epoch, len(self.data))
            self._orders = {epoch: order}  # one epoch's order at a time: bounded memory
        return order[pos * self.bs : (pos + 1) * self.bs]

    def _load(self, step: int) -> tuple[np.ndarray, torch.Tensor]:
        idx = self.indices(step)
        batch = torch.from_numpy(self.data.batch(idx)).permute(0, 3, 1, 2)
        return idx, batch.pin_memory() if self.pin else batch

    def get(self, step: int) -> tuple[np.ndarray, torch.Tensor]:
        if self._pool is None:
            return self._load(step)
        ahead, self._ahead = self._ahead, None
        if ahead is not None and ahead[0] == step:
            result = ahead[1].result()
        else:  # first step, or a jump (resume): nothing useful was prepared
            if ahead is not None:
                ahead[1].cancel()
            result = self._load(step)
        self._ahead = (step + 1, self._pool.submit(self._load, step + 1))
        return result

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
