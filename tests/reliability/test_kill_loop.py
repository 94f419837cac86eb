"""RELIABILITY 16 and 18 with a real process: SIGKILL at three named moments, resume each time.

The child (kill_child.py) trains a tiny run on CPU and stops itself at the named point, so the
kill lands exactly there: mid-step, mid-checkpoint-write, at an epoch boundary. The resumed
run must have trained every planned step once in its log, and end with weights, optimizer
state and losses bit-identical to an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from sslstudio.core.train import checkpoints as ckpt
from sslstudio.core.train.runs import read_metrics
from sslstudio.core.train.trainer import train
from tests.reliability.kill_child import sigkill, start_child, wait_marker, write_config
from tests.shapes import tiny_config

# 24 images, batch 8: 3 steps an epoch, 4 epochs = 12 steps, checkpoints at 2, 4, 6, 8, 10
TOTAL = 12


def _step_rows(run: Path) -> list[dict]:
    return [r for r in read_metrics(run) if r["kind"] == "step"]


def _kill(cfg_path: Path, run: Path, resume: bool, point: str, marker: Path) -> int:
    """Run a child to ``point``, SIGKILL it there; returns the highest step it logged."""
    proc = start_child(cfg_path, run if resume else None, point, marker)
    try:
        assert wait_marker(proc, marker), f"child ended before {point}: rc={proc.returncode}"
    finally:  # a failing test leaves no child behind
        sigkill(proc)
    assert proc.returncode == -9
    return max(r["step"] for r in _step_rows(run))


@pytest.mark.timeout(600)  # about 20 s alone; five processes, so slow on a crowded runner
def test_sigkill_mid_step_mid_checkpoint_and_at_epoch_end_then_resume_is_exact(
    tiny_folder, tmp_path
) -> None:
    cfg = tiny_config(tiny_folder, tmp_path / "run", epochs=4, monitor_every=0, deterministic=True)
    straight = dataclasses.replace(cfg, out=str(tmp_path / "straight"))
    list(train(straight))
    cfg_path = write_config(cfg, tmp_path / "cfg.json")
    run, marker = tmp_path / "run", tmp_path / "marker"
    redone = 0

    # 1. mid-step 3: forward done, no update; the checkpoint of step 2 is the one to resume
    last = _kill(cfg_path, run, False, "step:3", marker)
    assert last == 2 and ckpt.latest_good(run)[0].step == 2
    redone += last + 1 - 2

    # 2. mid-write of checkpoint 6: its temp folder is on disk, half-written
    last = _kill(cfg_path, run, True, "checkpoint:6", marker)
    stray = list((run / "checkpoints").glob(".tmp-step_0000006-*"))
    assert stray and not (stray[0] / "meta.json").exists()
    found, damaged = ckpt.latest_good(run)
    assert found.step == 4 and not damaged  # the half-written one is never offered
    redone += last + 1 - 4

    # 3. at the end of epoch 2 (after step 8); the checkpoint of step 8 was written before
    last = _kill(cfg_path, run, True, "epoch:2", marker)
    assert not list((run / "checkpoints").glob(".tmp-*"))  # the restart removed the stray folder
    assert last == 8 and ckpt.latest_good(run)[0].step == 8
    redone += last + 1 - 8

    # 4. resume to the end, undisturbed
    proc = start_child(cfg_path, run, "", marker)
    try:
        assert proc.wait(240) == 0, (marker.with_name("marker.log")).read_text()
    finally:
        if proc.poll() is None:
            sigkill(proc)

    steps = _step_rows(run)
    assert [r["step"] for r in steps] == list(
        range(TOTAL)
    )  # every step once: no gaps, no duplicates
    assert [r["loss"] for r in steps] == [r["loss"] for r in _step_rows(tmp_path / "straight")]
    rows = read_metrics(run)
    assert rows[-1]["kind"] == "finished" and rows[-1]["step"] == TOTAL
    assert [r["epoch"] for r in rows if r["kind"] == "epoch"] == [0, 1, 2, 3]
    ma, sa, meta_a = ckpt.load_checkpoint(tmp_path / "straight" / "checkpoints" / "final")
    mb, sb, meta_b = ckpt.load_checkpoint(run / "checkpoints" / "final")
    assert meta_b["step"] == TOTAL and ma.keys() == mb.keys()
    diff = max(float((ma[k].double() - mb[k].double()).abs().max()) for k in ma if ma[k].numel())
    assert diff == 0.0 and all(torch.equal(ma[k], mb[k]) for k in ma)
    opt_a, opt_b = sa["optimizer"]["state"], sb["optimizer"]["state"]
    assert opt_a.keys() == opt_b.keys()
    assert all(torch.equal(opt_a[i][n], opt_b[i][n]) for i in opt_a for n in opt_a[i])
    assert redone == 1 + 2 + 1  # only the steps logged since the last checkpoint are redone
