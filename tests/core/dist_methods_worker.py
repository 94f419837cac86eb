"""One rank of the per-method equivalence tests (``test_distributed_methods.py``), started like
torchrun starts it. For every method in turn: the scenario from scratch on two ranks, the last
step resumed on two ranks from the one-process checkpoint, and (for methods that read the whole
batch) the scenario with the collectives switched off, to show they matter."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from sslstudio.core.methods.base import ONE_PROCESS  # noqa: E402
from sslstudio.core.train import distributed  # noqa: E402
from sslstudio.core.train.ranks import Ranked  # noqa: E402
from tests.core import dist_methods as sc  # noqa: E402


def one_method(name: str, out: Path, ranks: Ranked) -> None:
    def write(kind: str, method, losses: list[float]) -> None:
        tensors = {**sc.state(method), "_losses": torch.tensor(losses)}
        save_file(tensors, str(out / f"{name}.{kind}.rank{ranks.rank}.safetensors"))

    method, opt = sc.tiny(name)
    ranks.adopt(method)
    losses = sc.run(method, opt, name, range(sc.RESUME_AT), ranks)
    if ranks.main:
        sc.save(method, opt, out / "two" / name, "mid")
    losses += sc.run(method, opt, name, range(sc.RESUME_AT, sc.STEPS), ranks)
    write("fresh", method, losses)

    method, opt = sc.tiny(name)
    sc.load(method, opt, out / "one" / name / "checkpoints" / "mid")
    ranks.adopt(method)
    write("resumed", method, sc.run(method, opt, name, range(sc.RESUME_AT, sc.STEPS), ranks))

    if name in sc.BATCH_WIDE:
        method, opt = sc.tiny(name)
        ranks.adopt(method)
        method.ranks = ONE_PROCESS  # gradients still averaged, batch-wide state per rank
        write("apart", method, sc.run(method, opt, name, range(sc.STEPS), ranks))


def main(out: str, names: list[str]) -> None:
    torch.set_num_threads(1)
    ranks = Ranked(distributed.init_from_env("cpu"))
    for name in names:
        one_method(name, Path(out), ranks)
    distributed.barrier()
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
