"""One rank of the 2-process equivalence test, started like torchrun starts it (RANK, WORLD_SIZE,
MASTER_ADDR, MASTER_PORT in the environment). Writes its loss and averaged gradients."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from sslstudio.core.methods import Batch  # noqa: E402
from sslstudio.core.train import distributed  # noqa: E402
from sslstudio.core.train.ranks import Ranked  # noqa: E402
from tests.core.dist_model import global_views, tiny_groupnorm_simclr  # noqa: E402


def main(out: str) -> None:
    world = distributed.init_from_env("cpu")
    method = tiny_groupnorm_simclr()
    Ranked(world).adopt(method)  # rank 0's weights, and the ranks as the method's collectives
    views = global_views()
    rows = distributed.rank_rows(views[0].shape[0], world)
    loss, _ = method.training_step(Batch([v[rows] for v in views]))
    loss.backward()
    distributed.average_gradients(method)
    tensors = {
        f"grad.{n}": p.grad.contiguous() for n, p in method.named_parameters() if p.grad is not None
    }
    tensors["loss"] = distributed.mean_over_ranks(loss).reshape(1)
    save_file(tensors, str(Path(out) / f"rank{world.rank}.safetensors"))
    distributed.barrier()
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
