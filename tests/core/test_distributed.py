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

from sslstudio.core.losses.ntxent import NTXentLoss
from sslstudio.core.methods import Batch
from sslstudio.core.train import distributed
from sslstudio.errors import ConfigError
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
        env = {
            **os.environ,
            "RANK": str(rank),
            "WORLD_SIZE": "2",
            "LOCAL_RANK": str(rank),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "OMP_NUM_THREADS": "1",
        }
        procs.append(
            subprocess.Popen(
                [sys.executable, str(ROOT / "tests/core/dist_worker.py"), str(tmp_path)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
        )
    for p in procs:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0, out.decode(errors="replace")[-3000:]
    method = tiny_groupnorm_simclr()
    loss, _ = method.training_step(Batch(global_views()))
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
    alone, _ = tiny_groupnorm_simclr().training_step(Batch(half))
    assert abs(alone.item() - loss.item()) > 1e-3


def test_ntxent_with_an_identity_gather_is_the_plain_loss():
    g = torch.Generator().manual_seed(0)
    z0, z1 = torch.randn(6, 8, generator=g), torch.randn(6, 8, generator=g)
    loss = NTXentLoss(0.3)
    assert loss(z0, z1, gather=lambda x: (x, 0)).item() == pytest.approx(
        loss(z0, z1).item(), abs=1e-6
    )


def test_every_method_trains_under_distributed_and_one_without_the_trait_is_refused(monkeypatch):
    from sslstudio.core.methods import METHODS

    for name in METHODS:
        distributed.check_method(name)
    unfit = type("Unfit", (METHODS["swav"],), {"distributed": False})
    monkeypatch.setitem(METHODS, "swav", unfit)
    with pytest.raises(ConfigError, match="swav does not train across processes"):
        distributed.check_method("swav")
    assert distributed.current() is None


def test_init_outside_torchrun_says_how_to_start(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(ConfigError, match="torchrun"):
        distributed.init_from_env()


def test_sslstudio_train_distributed_runs_two_ranks_into_one_run_that_resumes_alone(
    tiny_folder, tmp_path
):
    """`sslstudio train --distributed` as torchrun starts it: rank 0 writes one run folder and one
    log; the checkpoint's global plan resumes in a single process. DINO: multi-crop views and
    a centre shared by the ranks, saved in the checkpoint (SimCLR, MoCo v3, SwAV and VICReg go
    the same way; every method's step is checked in test_distributed_methods.py)."""
    import json

    from sslstudio.core.events import RunFinished
    from sslstudio.core.train import checkpoints as ckpt
    from sslstudio.core.train.runs import load_run_config, read_metrics
    from sslstudio.core.train.trainer import train

    port, run = _free_port(), tmp_path / "run"
    args = [
        sys.executable,
        "-m",
        "sslstudio",
        "train",
        str(tiny_folder),
        "--distributed",
        "--method",
        "dino",
        "--backbone",
        "tiny_cnn",
        "--image-size",
        "16",
        "--batch-size",
        "8",
        "--epochs",
        "1",
        "--checkpoint-every",
        "2",
        "--monitor-every",
        "2",
        "--threads",
        "1",
        "--out",
        str(run),
        "--quiet",
    ]
    procs = []
    for rank in range(2):
        env = {
            **os.environ,
            "RANK": str(rank),
            "WORLD_SIZE": "2",
            "LOCAL_RANK": str(rank),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
        }
        procs.append(
            subprocess.Popen(
                args, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
            )
        )
    outs = [p.communicate(timeout=180)[0].decode(errors="replace") for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert "finished 3 steps" in outs[0] and "finished" not in outs[1]  # rank 0 reports
    rows = read_metrics(run)
    assert [r["step"] for r in rows if r["kind"] == "step"] == [0, 1, 2]  # one log, no duplicates
    meta = ckpt.read_meta(run / "checkpoints" / "final")
    assert meta["plan"]["batch_size"] == 8 and meta["step"] == 3
    assert json.loads((run / "config.json").read_text())["method"] == "dino"
    import shutil

    shutil.rmtree(run / "checkpoints" / "final")  # as if killed after step 2's checkpoint
    events = list(train(load_run_config(run), resume_from=run))  # one process continues the plan
    assert isinstance(events[-1], RunFinished) and events[-1].step == 3
    assert [r["step"] for r in read_metrics(run) if r["kind"] == "step"] == [0, 1, 2]


def test_a_budget_is_planned_on_rank_0_and_kept_by_every_rank(tiny_folder, tmp_path):
    """`--budget` under torchrun: rank 0 times the steps and plans, every rank takes its plan,
    the run ends on time with the pace agreed across ranks, and the plan is saved with the run."""
    import json
    import time

    from sslstudio.core.train.runs import read_metrics

    port, run = _free_port(), tmp_path / "run"
    args = [
        sys.executable,
        "-m",
        "sslstudio",
        "train",
        str(tiny_folder),
        "--distributed",
        "--budget",
        "40s",
        "--backbone",
        "tiny_cnn",
        "--image-size",
        "16",
        "--batch-size",
        "8",
        "--threads",
        "1",
        "--out",
        str(run),
        "--quiet",
    ]
    procs, t0 = [], time.monotonic()
    for rank in range(2):
        env = {
            **os.environ,
            "RANK": str(rank),
            "WORLD_SIZE": "2",
            "LOCAL_RANK": str(rank),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
        }
        procs.append(
            subprocess.Popen(
                args, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
            )
        )
    outs = [p.communicate(timeout=240)[0].decode(errors="replace") for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert "finished" in outs[0] and "finished" not in outs[1]
    plan = json.loads((run / "budget.json").read_text())
    cfg = json.loads((run / "config.json").read_text())
    assert (
        cfg["time_budget_s"] > 0 and cfg["backbone"] == "tiny_cnn" and cfg["batch_size"] == 8
    )  # flags kept
    assert plan["config"]["time_budget_s"] == cfg["time_budget_s"]
    steps = [r["step"] for r in read_metrics(run) if r["kind"] == "step"]
    assert steps == list(range(len(steps))) and len(steps) > 3  # one log, every step once
    assert time.monotonic() - t0 < 40 + 60  # the budget, start-up and planning included, with slack
