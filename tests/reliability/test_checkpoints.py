"""RELIABILITY 16, 18-23, 26, 27 (# N before each group): what tests/core does not check yet.

Disk faults (17) are in test_faults.py; SIGKILL (16, 18) in test_kill_loop.py.
"""

from __future__ import annotations

import errno
import os
import random
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch

from sslstudio.core.data.cache import DecodedImages
from sslstudio.core.events import RunFailed, RunFinished, RunStarted, StepLogged
from sslstudio.core.methods import build_method
from sslstudio.core.train import checkpoints as ckpt
from sslstudio.core.train.runs import RunLock, RunLockedError, read_metrics
from sslstudio.core.train.trainer import train
from sslstudio.errors import CheckpointError, ConfigError
from tests.shapes import make_shapes_folder, tiny_config


def _save(run, name, step, value=1.0):
    return ckpt.save_checkpoint(
        run, name, {"w": torch.full((3,), value)}, _TRAIN_STATE, {"step": step}
    )


# the shape of an optimizer's state_dict: a state.pt without it counts as damaged
_TRAIN_STATE = {"optimizer": {"state": {}, "param_groups": [{"params": [0], "lr": 0.1}]}}


def _stop_after(cfg, step, **kw):
    """Train until StepLogged ``step`` arrives, then stop as the Stop button does."""
    stop = threading.Event()
    events = []
    for ev in train(cfg, stop=stop, **kw):
        events.append(ev)
        if isinstance(ev, StepLogged) and ev.step == step:
            stop.set()
    return events


# 16
def test_every_file_is_fsynced_before_the_rename_into_place(tmp_path, monkeypatch):
    log: list[tuple] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        log.append(("fsync", os.fstat(fd).st_ino))
        return real_fsync(fd)

    def replace(src, dst):
        log.append(("replace", os.path.dirname(os.fspath(src)), os.path.dirname(os.fspath(dst))))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    final = _save(tmp_path, "step_0000002", 2)
    rename = next(i for i, e in enumerate(log) if e[0] == "replace")
    assert log[rename][1] == log[rename][2] == str(final.parent)  # temp beside the final name
    synced = {e[1] for e in log[:rename] if e[0] == "fsync"}
    for name in ("model.safetensors", "state.pt", "meta.json"):
        assert (final / name).stat().st_ino in synced, f"{name} not fsynced before the rename"


@pytest.mark.parametrize("stage", ["model", "state", "meta", "rename"])
def test_a_failure_at_any_stage_leaves_the_previous_checkpoint_and_no_temp(
    tmp_path, monkeypatch, stage
):
    _save(tmp_path, "step_0000002", 2, 2.0)
    real_write, real_replace = ckpt._write_file, os.replace

    def write(path, writer):
        if path.name == {"model": "model.safetensors", "state": "state.pt"}.get(stage, "meta.json"):
            raise OSError(errno.EIO, "Input/output error")
        real_write(path, writer)

    def failing_replace(src, dst):
        raise OSError(errno.EIO, "Input/output error")

    if stage == "rename":
        monkeypatch.setattr(os, "replace", failing_replace)
    else:
        monkeypatch.setattr(ckpt, "_write_file", write)
    with pytest.raises(CheckpointError, match="Input/output error.*previous checkpoint is intact"):
        _save(tmp_path, "step_0000004", 4, 4.0)
    monkeypatch.setattr(os, "replace", real_replace)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step_0000002"]
    found, damaged = ckpt.latest_good(tmp_path)
    assert found.step == 2 and not damaged
    assert torch.equal(ckpt.load_checkpoint(found.path)[0]["w"], torch.full((3,), 2.0))


def test_resaving_final_keeps_the_old_one_when_the_second_rename_fails(tmp_path, monkeypatch):
    _save(tmp_path, "final", 6, 6.0)
    real_replace = os.replace
    calls = {"n": 0}

    def second_fails(src, dst):
        calls["n"] += 1
        if calls["n"] == 2:  # final -> .old-final worked; .tmp -> final fails
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", second_fails)
    with pytest.raises(CheckpointError, match="No space left"):
        _save(tmp_path, "final", 6, 7.0)
    monkeypatch.setattr(os, "replace", real_replace)
    model, _, meta = ckpt.load_checkpoint(tmp_path / "checkpoints" / "final")
    assert meta["step"] == 6 and torch.equal(model["w"], torch.full((3,), 6.0))


def test_a_kill_between_the_two_renames_of_final_is_repaired_on_restart(tmp_path):
    final = _save(tmp_path, "final", 6, 6.0)
    aside = final.with_name(".old-final-12345")  # what a SIGKILL after the first rename leaves
    os.replace(final, aside)
    (tmp_path / "checkpoints" / ".tmp-final-abc").mkdir()
    ckpt.clean_stray(tmp_path)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["final"]
    assert ckpt.latest_good(tmp_path)[0].step == 6


# 18
def test_resume_restores_optimizer_schedule_and_data_order_whatever_the_global_rngs(
    tiny_folder, tmp_path, monkeypatch
):
    seen: dict[str, dict[int, list[int]]] = {"a": {}, "b": {}}
    which = {"run": "a"}
    real_batch = DecodedImages.batch

    def spy(self, idx):
        seen[which["run"]].setdefault(len(seen[which["run"]]), []).extend(int(i) for i in idx)
        return real_batch(self, idx)

    monkeypatch.setattr(DecodedImages, "batch", spy)
    kw = {"monitor_every": 0, "epochs": 3}
    straight = [e for e in train(tiny_config(tiny_folder, tmp_path / "a", **kw))]
    which["run"] = "b"
    gen = train(tiny_config(tiny_folder, tmp_path / "b", **kw))
    first = []
    for ev in gen:
        first.append(ev)
        if isinstance(ev, StepLogged) and ev.step == 4:
            break  # the process dies; the checkpoint holds step 4
    gen.close()
    random.seed(12345)  # a different process: other global RNG states
    np.random.seed(12345)
    torch.manual_seed(12345)
    rest = list(train(tiny_config(tiny_folder, tmp_path / "b", **kw), resume_from=tmp_path / "b"))
    assert next(e for e in rest if isinstance(e, RunStarted)).start_step == 4

    def steps(evs):
        return [(e.step, e.loss, e.lr) for e in evs if isinstance(e, StepLogged)]

    assert steps([e for e in first if getattr(e, "step", 9) < 4]) + steps(rest) == steps(straight)
    order_a = [i for k in sorted(seen["a"]) for i in seen["a"][k]]
    order_b = [i for k in sorted(seen["b"]) for i in seen["b"][k]]
    # the resumed run read batches 4.. again (plus prefetch): its data order is the straight one's
    assert order_b[-len(order_a[4 * 8 :]) :] == order_a[4 * 8 :]
    ma, sa, _ = ckpt.load_checkpoint(tmp_path / "a" / "checkpoints" / "final")
    mb, sb, _ = ckpt.load_checkpoint(tmp_path / "b" / "checkpoints" / "final")
    assert all(torch.equal(ma[k], mb[k]) for k in ma)
    assert sa["optimizer"]["param_groups"] == sb["optimizer"]["param_groups"]  # lr schedule too
    oa, ob = sa["optimizer"]["state"], sb["optimizer"]["state"]
    assert all(torch.equal(oa[i][n], ob[i][n]) for i in oa for n in oa[i])
    assert torch.equal(sa["torch_rng"], sb["torch_rng"])
    # weights_only: every RNG and optimizer value is a tensor or a plain value, never a pickle
    state = torch.load(tmp_path / "b" / "checkpoints" / "final" / "state.pt", weights_only=True)
    assert isinstance(state["torch_rng"], torch.Tensor)


# 19
@pytest.mark.parametrize("damage", ["truncated", "empty", "random"])
def test_resume_skips_a_damaged_newest_checkpoint_and_says_so(tiny_folder, tmp_path, damage):
    cfg = tiny_config(tiny_folder, tmp_path / "run", monitor_every=0)
    _stop_after(cfg, 3)  # checkpoints of steps 2 and 4
    target = tmp_path / "run" / "checkpoints" / "step_0000004" / "model.safetensors"
    data = target.read_bytes()
    target.write_bytes(
        {"truncated": data[: len(data) // 2], "empty": b""}.get(damage, os.urandom(len(data)))
    )
    assert ckpt.resolve(tmp_path / "run")[1].name == "step_0000002"  # what the GUI and CLI offer
    events = list(train(cfg, resume_from=tmp_path / "run"))
    started = next(e for e in events if isinstance(e, RunStarted))
    assert started.start_step == 2
    assert any("damaged" in n and "step_0000004" in n for n in started.notices)
    assert isinstance(events[-1], RunFinished)


def test_every_checkpoint_damaged_starts_over_and_the_history_still_lists_the_run(
    tiny_folder, tmp_path
):
    from sslstudio.gui.run.history import summarize

    cfg = tiny_config(tiny_folder, tmp_path / "run", monitor_every=0)
    _stop_after(cfg, 3)
    for p in (tmp_path / "run" / "checkpoints").glob("*/meta.json"):
        p.write_bytes(os.urandom(64))
    with (tmp_path / "run" / "metrics.jsonl").open("ab") as fh:
        fh.write(b'{"kind": "step", "st\xff\n')  # a line cut by a kill
    assert summarize(tmp_path / "run").steps_done == 4  # start-up lists it, no crash
    events = list(train(cfg, resume_from=tmp_path / "run"))
    started = next(e for e in events if isinstance(e, RunStarted))
    assert started.start_step == 0 and sum("damaged" in n for n in started.notices) == 2
    assert isinstance(events[-1], RunFinished)
    assert [r["step"] for r in read_metrics(tmp_path / "run") if r["kind"] == "step"] == list(
        range(6)
    )


# 20
def test_config_differences_are_all_listed(tiny_folder, tmp_path):
    list(train(tiny_config(tiny_folder, tmp_path / "run", max_steps=2, monitor_every=0)))
    other = tiny_config(
        tiny_folder, tmp_path / "run", method="byol", image_size=24, monitor_every=0
    )
    with pytest.raises(ConfigError) as err:
        next(train(other, resume_from=tmp_path / "run"))
    assert "method: checkpoint 'simclr' vs requested 'byol'" in str(err.value)
    assert "image_size: checkpoint 16 vs requested 24" in str(err.value)


def test_weights_of_another_architecture_load_nothing(tiny_folder, tmp_path):
    cfg = tiny_config(tiny_folder, tmp_path / "run", max_steps=2, monitor_every=0)
    list(train(cfg))
    method = build_method(cfg)
    before = {k: v.clone() for k, v in method.state_dict().items()}
    state = {k: torch.randn_like(v.float()).to(v.dtype) for k, v in before.items()}
    bad_key = next(k for k, v in before.items() if v.ndim == 4)
    state[bad_key] = torch.zeros(1, 2, 3, 3)
    state["head.extra.weight"] = torch.zeros(2)
    with pytest.raises(CheckpointError, match=rf"another model.*e\.g\. {bad_key}.*1 unexpected"):
        ckpt.load_model_state(method, state, tmp_path)
    assert all(torch.equal(before[k], v) for k, v in method.state_dict().items())  # no partial load
    # the same through a resume: a swapped weights file is refused and nothing is overwritten
    final = tmp_path / "run" / "checkpoints" / "final"
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in state.items()}, str(final / "model.safetensors"))
    mtime = (final / "meta.json").stat().st_mtime_ns
    with pytest.raises(CheckpointError, match="belongs to another model"):
        list(train(cfg, resume_from=tmp_path / "run"))
    assert (final / "meta.json").stat().st_mtime_ns == mtime


# 21
@pytest.mark.parametrize("change", ["added", "removed"])
def test_changed_folder_is_reported_and_never_indexes_past_the_end(
    tiny_folder, tmp_path, monkeypatch, change
):
    cfg = tiny_config(tiny_folder, tmp_path / "run", monitor_every=0)
    _stop_after(cfg, 1)
    if change == "added":
        make_shapes_folder(tiny_folder, per_class=15, size=24, seed=1, shapes=("circle", "square"))
    else:
        for p in sorted(tiny_folder.rglob("*.png"))[:17]:
            p.unlink()
    n = 30 if change == "added" else 7
    worst = {"idx": -1}
    real_batch = DecodedImages.batch

    def spy(self, idx):
        assert len(self) == n
        worst["idx"] = max(worst["idx"], int(np.max(idx)))
        return real_batch(self, idx)

    monkeypatch.setattr(DecodedImages, "batch", spy)
    events = list(train(cfg, resume_from=tmp_path / "run"))
    started = next(e for e in events if isinstance(e, RunStarted))
    assert any(f"folder changed since this checkpoint (24 -> {n}" in x for x in started.notices)
    assert isinstance(events[-1], RunFinished) and 0 <= worst["idx"] < n
    meta = ckpt.read_meta(tmp_path / "run" / "checkpoints" / "final")
    assert meta["plan"]["revisions"][-1]["reason"] == "folder changed"
    assert meta["plan"]["num_images"] == n


# 22
def test_another_process_holding_the_run_is_refused_until_it_dies(tiny_folder, tmp_path):
    cfg = tiny_config(tiny_folder, tmp_path / "run", max_steps=2, monitor_every=0)
    list(train(cfg))
    code = (
        "import sys, time; from pathlib import Path; from sslstudio.core.train.runs import RunLock;"
        "held = RunLock(Path(sys.argv[1])).acquire(); print('held', flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path / "run")],
        stdout=subprocess.PIPE,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
    )
    try:
        assert holder.stdout.readline().strip() == b"held"
        with pytest.raises(RunLockedError, match="another SSL Studio process"):
            next(train(cfg, resume_from=tmp_path / "run"))
    finally:
        holder.kill()
        holder.wait(10)
    RunLock(tmp_path / "run").acquire().release()  # a dead holder never locks the run for good


def test_looking_at_a_run_never_looks_like_a_trainer_nor_refuses_one(tmp_path):
    """The Runs page looks at every run's lock from background threads while the user may press
    Resume: two looks must not see each other as a trainer (a finished run stayed "running"),
    and a trainer starting during a look must get the lock, not a refusal."""
    from sslstudio.gui.run.history import is_locked

    run = tmp_path / "run"
    run.mkdir()
    RunLock(run).acquire().release()  # the .lock file of a run trained before
    seen: list[list[bool]] = [[] for _ in range(4)]  # each looker's answers, in order
    quit_ = threading.Event()

    def look(mine: list[bool]) -> None:
        while not quit_.is_set():
            mine.append(is_locked(run))

    lookers = [threading.Thread(target=look, args=(mine,)) for mine in seen]
    for t in lookers:
        t.start()
    try:
        while min(map(len, seen)) < 500:
            time.sleep(0.01)
        answers = [a for mine in seen for a in mine]
        assert not any(answers), f"{sum(answers)} of {len(answers)} looks saw a trainer"
        for _ in range(100):  # a trainer arriving in the middle of the looks gets the lock
            held = RunLock(run).acquire(grace=1.0)
            counts = [len(mine) for mine in seen]
            while any(len(mine) < c + 2 for mine, c in zip(seen, counts, strict=True)):
                time.sleep(0.001)
            # a look begun before the trainer may answer "free"; every later one sees it
            assert all(mine[c + 1] for mine, c in zip(seen, counts, strict=True))
            held.release()
    finally:
        quit_.set()
        for t in lookers:
            t.join(10)


def test_a_trainer_elsewhere_is_refused_after_the_grace_and_seen_by_a_look(tmp_path):
    from sslstudio.gui.run.history import is_locked

    run = tmp_path / "run"
    run.mkdir()
    code = (
        "import sys, time; from pathlib import Path; from sslstudio.core.train.runs import RunLock;"
        "held = RunLock(Path(sys.argv[1])).acquire(); print('held', flush=True); time.sleep(60)"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(run)],
        stdout=subprocess.PIPE,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
    )
    try:
        assert holder.stdout.readline().strip() == b"held"
        assert is_locked(run)
        t0 = time.monotonic()
        with pytest.raises(RunLockedError, match="another SSL Studio process"):
            RunLock(run).acquire(grace=0.3)
        assert time.monotonic() - t0 >= 0.3  # it waited out the grace before refusing
    finally:
        holder.kill()
        holder.wait(10)
    assert not is_locked(run)  # a dead holder's lock is gone with it
    RunLock(run).acquire(grace=0).release()


# 23:
# tests/core/test_trainer.py::test_non_finite_loss_stops_with_step_and_keeps_finite_checkpoint[nan,
# inf]


# 26
def test_cuda_failing_to_initialise_trains_on_cpu_with_a_visible_notice(
    tiny_folder, tmp_path, monkeypatch
):
    def broken():
        raise RuntimeError("CUDA driver initialization failed")

    monkeypatch.setattr(torch.cuda, "is_available", broken)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    cfg = tiny_config(tiny_folder, tmp_path / "run", max_steps=1, monitor_every=0, device="cuda")
    events = list(train(cfg))
    started = next(e for e in events if isinstance(e, RunStarted))
    assert started.device.startswith("cpu") and isinstance(events[-1], RunFinished)
    assert any("CUDA failed to initialise (RuntimeError)" in n for n in started.notices)
    assert any("training on CPU" in n for n in started.notices)


# 27
def _failing_loader(monkeypatch, exc, after_calls=3):
    real_batch = DecodedImages.batch
    calls = {"n": 0}

    def batch(self, idx):
        calls["n"] += 1
        if calls["n"] > after_calls:  # runs on the loader's prefetch thread
            raise exc
        return real_batch(self, idx)

    monkeypatch.setattr(DecodedImages, "batch", batch)


def test_a_dying_batch_loader_is_reported_with_the_last_checkpoint_and_resumes(
    tiny_folder, tmp_path, monkeypatch
):
    cfg = tiny_config(tiny_folder, tmp_path / "run", monitor_every=0)
    _failing_loader(monkeypatch, OSError(errno.EIO, "Input/output error"))
    events = []
    with pytest.raises(OSError):
        for ev in train(cfg):
            events.append(ev)
    failed = events[-1]
    assert isinstance(failed, RunFailed) and "Input/output error" in failed.message
    done = [e.step for e in events if isinstance(e, StepLogged)]
    assert failed.last_checkpoint.endswith(f"step_{done[-1] + 1:07d}")  # every step done is kept
    assert read_metrics(tmp_path / "run")[-1]["kind"] == "failed"
    monkeypatch.undo()
    rest = list(train(cfg, resume_from=tmp_path / "run"))
    assert isinstance(rest[-1], RunFinished)


def test_a_dying_batch_loader_checkpoints_the_steps_already_done(
    tiny_folder, tmp_path, monkeypatch
):
    cfg = tiny_config(tiny_folder, tmp_path / "run", monitor_every=0)
    _failing_loader(monkeypatch, MemoryError("cannot allocate the batch"))
    events = []
    with pytest.raises(MemoryError):
        for ev in train(cfg):
            events.append(ev)
    steps = [e.step for e in events if isinstance(e, StepLogged)]
    assert isinstance(events[-1], RunFailed) and "cannot allocate" in events[-1].message
    assert events[-1].last_checkpoint.endswith(f"step_{steps[-1] + 1:07d}")
