"""What the trainer does differently as one rank of many: ``Alone`` does nothing extra, so the
training loop reads the same either way; ``Ranked`` speaks to the other processes. Both are the
``Collectives`` a method sees as ``method.ranks``: the identity alone, gathers and all-reduces
over the ranks here, so a method's batch-wide state is that of the global batch."""

from __future__ import annotations

import torch

from sslstudio.core.methods.base import Collectives
from sslstudio.core.train import distributed
from sslstudio.core.train.distributed import World


class NullLog:
    """The metrics log of ranks other than 0: rank 0 writes the run's one log."""

    def write(self, kind: str, **row) -> None:
        pass

    def write_event(self, ev, **more) -> None:
        pass

    def close(self) -> None:
        pass


class Alone(Collectives):
    """One process: every hook is a no-op, every collective the identity."""

    main, rank, size = True, 0, 1

    def run_dir(self, path) -> str:
        return str(path)

    def before_prepare(self) -> None:
        pass

    def after_prepare(self) -> None:
        pass

    def adopt(self, method: torch.nn.Module) -> None:
        pass

    def batch(self, bs: int) -> int:
        return bs

    def share(self, idx, batch):
        return idx, batch

    def sync(self, method: torch.nn.Module) -> None:
        pass

    def loss(self, loss: torch.Tensor) -> torch.Tensor:
        return loss

    def halt(self, stop: bool) -> bool:
        return stop

    def agree(self, stop: bool, new_total: int | None) -> tuple[bool, int | None]:
        return stop, new_total


HALT_EVERY = 8  # steps between two stop checks across ranks: each one waits for every device


class Ranked(Alone):
    """One rank of ``world``: rank 0 decides, writes and reports; all ranks compute."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.main, self.rank, self.size = world.main, world.rank, world.size
        self._halt_calls = 0

    def run_dir(self, path) -> str:
        return distributed.broadcast_text(str(path) if self.main else "")

    def before_prepare(self) -> None:
        if not self.main:  # rank 0 scans and fills the shared decode cache first
            distributed.barrier()

    def after_prepare(self) -> None:
        if self.main:
            distributed.barrier()

    def adopt(self, method: torch.nn.Module) -> None:
        """Rank 0's weights everywhere, and this rank as the method's ``ranks``. On CUDA every
        BatchNorm becomes a SyncBatchNorm (statistics of the global batch, as on one process);
        gloo on CPUs has none, so there each rank normalises its own share (the equivalence
        tests use a network without batch statistics)."""
        distributed.broadcast_parameters(method)
        if any(p.is_cuda for p in method.parameters()):
            torch.nn.SyncBatchNorm.convert_sync_batchnorm(method)
        method.ranks = self

    def gather_with_grad(self, x: torch.Tensor) -> tuple[torch.Tensor, int]:
        return distributed.gather_rows(x)

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        return distributed.gather_detached(x)

    def all_reduce_mean(self, x: torch.Tensor) -> torch.Tensor:
        return distributed.mean_over_ranks(x)

    def batch(self, bs: int) -> int:
        return max(self.size, bs - bs % self.size)

    def share(self, idx, batch):
        rows = distributed.rank_rows(len(idx), self.world)
        return idx[rows], batch[rows]

    def sync(self, method: torch.nn.Module) -> None:
        distributed.average_gradients(method)

    def loss(self, loss: torch.Tensor) -> torch.Tensor:
        return distributed.mean_over_ranks(loss)

    def halt(self, stop: bool) -> bool:
        """Rank 0's stop request, checked every HALT_EVERY steps (every rank counts the same
        calls, so all check on the same step): a per-step check would stall each GPU step."""
        self._halt_calls += 1
        return self._halt_calls % HALT_EVERY == 1 and self.agree(stop, None)[0]

    def agree(self, stop: bool, new_total: int | None) -> tuple[bool, int | None]:
        s, t = distributed.agree([int(stop), new_total or 0])
        return bool(s), t or None


def for_this_process(method_name: str) -> Alone:
    world = distributed.current()
    if world is None:
        return Alone()
    distributed.check_method(method_name)
    return Ranked(world)
