"""Many processes, one run: the pieces `sslstudio train --distributed` adds under ``torchrun``.

Every rank holds the whole model and takes a contiguous slice of each global batch; gradients
are averaged over ranks before the optimizer step (one flattened all-reduce), so the update is
that of one process on the global batch. Batch-wide quantities are computed over the global
batch through the method's ``ranks`` (``ranks.Ranked``): embeddings that meet the rest of the
batch are gathered *with* gradients (``gather_rows``: SimCLR's and MoCo v3's negatives, Barlow
Twins' cross-correlation, VICReg's variance and covariance, W-MSE's whitening), state is fed
from every rank (queues, DeepCluster's bank, SwAV's Sinkhorn codes) and averages are averaged
over ranks (DINO's centre), so every rank holds the same state. Rank 0 owns the run folder, the
metrics log and the checkpoints; checkpoints hold the global plan, so a run resumes on any
world size.

Why the gradients come out exact: ``gather_rows``'s backward sums every rank's gradient into
the rows' own rank, and ``average_gradients`` divides by the world size. A loss computed on
each rank from its own rows (its mean over ranks is the global loss), or the whole global loss
computed identically on every rank, both give the gradient of one process's loss.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor

from sslstudio.core.methods import METHODS
from sslstudio.errors import ConfigError


@dataclass(frozen=True)
class World:
    rank: int
    size: int
    local_rank: int

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_from_env(device: str = "auto") -> World:
    """Join the process group ``torchrun`` describes in the environment (NCCL on CUDA, else
    gloo)."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        raise ConfigError(
            "--distributed needs torchrun: torchrun --nproc-per-node=N -m sslstudio train …"
        )
    local = int(os.environ.get("LOCAL_RANK", 0))
    cuda = device in ("auto", "cuda") and torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    return World(dist.get_rank(), dist.get_world_size(), local)


def current() -> World | None:
    """The process group this process belongs to, or None when training alone."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return None
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))


def check_method(name: str) -> None:
    """Refuse a method whose loss is not exact across ranks (its class says: ``distributed``;
    every built-in method is)."""
    cls = METHODS.get(name)
    if cls is None or not cls.distributed:
        fits = sorted(n for n, c in METHODS.items() if c.distributed)
        raise ConfigError(
            f"{name} does not train across processes yet (its batch-wide state is per process): "
            f"use one of {', '.join(fits)}, or train on one GPU"
        )


def gather_rows(x: Tensor) -> tuple[Tensor, int]:
    """All ranks' ``x`` stacked (rank order) with gradients flowing back to each rank's own
    rows, and where this rank's rows start. Every rank must pass the same number of rows."""
    from torch.distributed.nn.functional import all_gather  # autograd-aware: backward sums

    parts = all_gather(x)
    return torch.cat(parts), dist.get_rank() * x.shape[0]


def gather_detached(x: Tensor) -> Tensor:
    """All ranks' ``x`` stacked in rank order, no gradients (keys, codes, indices)."""
    x = x.detach().contiguous()
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x)
    return torch.cat(parts)


def average_gradients(module: torch.nn.Module) -> None:
    """Replace each gradient by its mean over ranks (one all-reduce of all of them)."""
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def broadcast_parameters(module: torch.nn.Module) -> None:
    """Rank 0's weights and buffers everywhere (one start, however each rank was seeded)."""
    for t in [*module.parameters(), *module.buffers()]:
        dist.broadcast(t.data, src=0)


def mean_over_ranks(x: Tensor) -> Tensor:
    y = x.detach().clone()
    dist.all_reduce(y)
    return y / dist.get_world_size()


def rank_rows(n: int, world: World) -> slice:
    """This rank's contiguous share of a global batch of ``n`` rows (``n`` divisible by size)."""
    if n % world.size:
        raise ConfigError(f"the batch of {n} does not split evenly over {world.size} processes")
    per = n // world.size
    return slice(world.rank * per, (world.rank + 1) * per)


def _wire() -> torch.device:
    """Where small collective tensors must live: NCCL only moves CUDA memory."""
    return torch.device("cuda") if dist.get_backend() == "nccl" else torch.device("cpu")


def agree(values: list[int]) -> list[int]:
    """Rank 0's small integer decisions (stop now, a new step count) on every rank."""
    t = torch.tensor(values, dtype=torch.long, device=_wire())
    dist.broadcast(t, src=0)
    return [int(v) for v in t.tolist()]


def barrier() -> None:
    dist.barrier()


def broadcast_text(text: str) -> str:
    """Rank 0's string (the run folder) on every rank, as UTF-8 bytes (nothing unpickled)."""
    raw = text.encode("utf-8")
    (n,) = agree([len(raw)])
    buf = torch.zeros(n, dtype=torch.uint8)
    if dist.get_rank() == 0:
        buf[:] = torch.frombuffer(bytearray(raw), dtype=torch.uint8)
    buf = buf.to(_wire())
    dist.broadcast(buf, src=0)
    return bytes(buf.cpu().tolist()).decode("utf-8")
