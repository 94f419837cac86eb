"""Two processes (gloo, as torchrun starts them) equal one process on the same global batch:
the loss, and every gradient, SimCLR's negatives gathered across the ranks included."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from sslstudio.core import distributed
from sslstudio.core.errors import ConfigError
from sslstudio.core.losses.ntxent import NTXentLoss
from tests.core.dist_model import global_views, tiny_groupnorm_simclr

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_equal_one_process_on_the_global_batch(tmp_path):
    port = _free_port()
    procs = []
    for rank in range(2):
        env = {**os.environ, "RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_RANK": str(rank),
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1"}
        procs.append(subprocess.Popen([sys.executable, str(ROOT / "tests/core/dist_worker.py"), str(tmp_path)],
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    for p in procs:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0, out.decode(errors="replace")[-3000:]
    method = tiny_groupnorm_simclr()
    loss, _ = method.training_step(global_views())
    loss.backward()
    ranks = [load_file(str(tmp_path / f"rank{r}.safetensors")) for r in range(2)]
    for got in ranks:
        assert got["loss"].item() == pytest.approx(loss.item(), abs=1e-5)
        grads = {n: p.grad for n, p in method.named_parameters() if p.grad is not None}
        assert set(grads) == {k.removeprefix("grad.") for k in got if k.startswith("grad.")}
        for name, g in grads.items():
            torch.testing.assert_close(got[f"grad.{name}"], g, atol=2e-5, rtol=1e-4, msg=name)
    # and the gathered negatives matter: without them each rank's loss is a different number
    half = [v[:4] for v in global_views()]
    alone, _ = tiny_groupnorm_simclr().training_step(half)
    assert abs(alone.item() - loss.item()) > 1e-3


def test_ntxent_with_an_identity_gather_is_the_plain_loss():
    g = torch.Generator().manual_seed(0)
    z0, z1 = torch.randn(6, 8, generator=g), torch.randn(6, 8, generator=g)
    loss = NTXentLoss(0.3)
    assert loss(z0, z1, gather=lambda x: (x, 0)).item() == pytest.approx(loss(z0, z1).item(), abs=1e-6)


def test_methods_with_batch_wide_state_are_refused_under_distributed():
    distributed.check_method("simclr")
    with pytest.raises(ConfigError, match="swav does not train across processes"):
        distributed.check_method("swav")
    assert distributed.current() is None


def test_init_outside_torchrun_says_how_to_start(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(ConfigError, match="torchrun"):
        distributed.init_from_env()
