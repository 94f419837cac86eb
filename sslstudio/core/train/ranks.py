"""What the trainer does differently as one rank of many: ``Alone`` does nothing extra, so the
training loop reads the same either way; ``Ranked`` speaks to the other processes."""

from __future__ import annotations

import torch

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


class Alone:
    """One process: every hook is a no-op."""

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
        distributed.broadcast_parameters(method)
        method.gather = distributed.gather_rows

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
