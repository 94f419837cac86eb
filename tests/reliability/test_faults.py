"""RELIABILITY 17: disk full (ENOSPC) and read-only (EACCES) while saving anything.

Faults are injected by replacing the I/O call (CI runs as root: chmod would not refuse it).
Each time: the error says what happened ("No space left on device" / "Permission denied"),
nothing claims to be saved, and the previous files are intact and load.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from sslstudio.core.events import CheckpointSaved, RunFailed, StepLogged
from sslstudio.core.export import bundle as ex
from sslstudio.core.export.formats import ExportError
from sslstudio.core.train import checkpoints as ckpt
from sslstudio.core.train import runs
from sslstudio.core.train.trainer import train
from sslstudio.errors import CheckpointError, SSLStudioError
from tests.shapes import tiny_config

FAULTS = {
    "disk full": (OSError, errno.ENOSPC, "No space left on device"),
    "read-only": (PermissionError, errno.EACCES, "Permission denied"),
}


def _fault(kind: str) -> OSError:
    cls, code, text = FAULTS[kind]
    return cls(code, text)


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _run_until_failure(cfg) -> list:
    events = []
    with pytest.raises(CheckpointError) as err:
        for ev in train(cfg):
            events.append(ev)
    return events, str(err.value)


# checkpoints ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(FAULTS))
@pytest.mark.parametrize("call", ["safetensors", "torch.save", "meta.json", "mkdtemp"])
def test_checkpoint_write_fault_during_training(tiny_folder, tmp_path, monkeypatch, kind, call):
    """The save of step 4 fails: RunFailed says why, step 2 stays the loadable checkpoint."""
    run = tmp_path / "run"
    calls = {"n": 0}

    def faulty(real):
        def wrapper(*args, **kwargs):
            if call == "mkdtemp":
                target = str(kwargs["dir"])
            else:
                target = str(args[1] if call in ("safetensors", "torch.save") else args[0])
            if call == "meta.json" and not target.endswith("meta.json"):
                return real(*args, **kwargs)
            calls["n"] += 1
            if calls["n"] == 2 and (call == "mkdtemp" or str(run) in target or call == "meta.json"):
                raise _fault(kind)
            return real(*args, **kwargs)

        return wrapper

    if call == "safetensors":
        monkeypatch.setattr(ckpt, "save_file", faulty(ckpt.save_file))
    elif call == "torch.save":
        monkeypatch.setattr(torch, "save", faulty(torch.save))
    elif call == "meta.json":
        monkeypatch.setattr(Path, "write_text", faulty(Path.write_text))
    else:
        monkeypatch.setattr(ckpt.tempfile, "mkdtemp", faulty(ckpt.tempfile.mkdtemp))
    events, message = _run_until_failure(tiny_config(tiny_folder, run, monitor_every=0))
    text = FAULTS[kind][2]
    assert text in message and "previous checkpoint is intact" in message
    failed = events[-1]
    assert isinstance(failed, RunFailed) and text in failed.message
    assert failed.last_checkpoint.endswith("step_0000002")
    assert [e.step for e in events if isinstance(e, CheckpointSaved)] == [
        2
    ]  # never a silent "saved"
    monkeypatch.undo()
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_0000002"]  # no temp
    found, damaged = ckpt.latest_good(run)
    assert found.step == 2 and not damaged
    ckpt.load_checkpoint(found.path)
    assert runs.read_metrics(run)[-1] == {"kind": "failed", "step": 4, "message": message}


# metrics log ------------------------------------------------------------------------------------


class _FailingFile:
    """A text file whose ``write`` fails once ``budget`` writes are spent."""

    def __init__(self, fh, budget: int, exc: OSError) -> None:
        self._fh, self._budget, self._exc = fh, budget, exc

    def write(self, text: str) -> int:
        self._budget -= 1
        if self._budget < 0:
            raise self._exc
        return self._fh.write(text)

    def __getattr__(self, name):
        return getattr(self._fh, name)


@pytest.mark.parametrize("kind", sorted(FAULTS))
def test_metrics_log_write_fault_stops_the_run_with_the_reason(
    tiny_folder, tmp_path, monkeypatch, kind
):
    run = tmp_path / "run"
    real_open = open

    def faulty_open(path, mode="r", *args, **kwargs):
        fh = real_open(path, mode, *args, **kwargs)
        return _FailingFile(fh, 4, _fault(kind)) if str(path).endswith("metrics.jsonl") else fh

    monkeypatch.setattr(runs, "open", faulty_open, raising=False)
    events, message = _run_until_failure(tiny_config(tiny_folder, run, monitor_every=0))
    assert f"cannot write the metrics log {run / 'metrics.jsonl'}: {FAULTS[kind][2]}" == message
    assert isinstance(events[-1], RunFailed) and FAULTS[kind][2] in events[-1].message
    monkeypatch.undo()
    rows = runs.read_metrics(run)  # what was written before the fault still reads back
    assert [r["kind"] for r in rows] == ["start", "step", "step", "checkpoint"]
    assert [e.step for e in events if isinstance(e, StepLogged)] == [0, 1]


@pytest.mark.parametrize("kind", sorted(FAULTS))
def test_metrics_log_rewrite_fault_on_resume_keeps_the_log(
    tiny_folder, tmp_path, monkeypatch, kind
):
    cfg = tiny_config(tiny_folder, tmp_path / "run", max_steps=4, monitor_every=0)
    gen = train(cfg)
    for ev in gen:
        if isinstance(ev, StepLogged) and ev.step == 3:
            break  # killed after step 3 was logged: the resume drops row 3 from the log
    gen.close()
    log = tmp_path / "run" / "metrics.jsonl"
    before = log.read_bytes()
    real_write_text = Path.write_text

    def write_text(self, *args, **kwargs):
        if self.name.endswith("metrics.jsonl"):
            real_write_text(self, "half a", encoding="utf-8")
            raise _fault(kind)
        return real_write_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", write_text)
    with pytest.raises(SSLStudioError, match=f"metrics log .*: {FAULTS[kind][2]}"):
        list(train(cfg, resume_from=tmp_path / "run"))
    monkeypatch.undo()
    assert log.read_bytes() == before
    assert sorted(p.name for p in log.parent.iterdir() if p.name.startswith(".tmp")) == []
    runs.RunLock(tmp_path / "run").acquire().release()  # and the run is not left locked


@pytest.mark.parametrize("kind", sorted(FAULTS))
def test_run_config_write_fault_is_a_clear_error(tiny_folder, tmp_path, monkeypatch, kind):
    def dump(*args, **kwargs):
        raise _fault(kind)

    monkeypatch.setattr(runs.json, "dump", dump)
    with pytest.raises(SSLStudioError, match=f"could not write .*config.json: {FAULTS[kind][2]}"):
        list(train(tiny_config(tiny_folder, tmp_path / "run")))  # written once the run starts
    assert not (tmp_path / "run").exists()  # a start that failed leaves no run folder


# export bundles ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, module_home) -> Path:
    from tests.shapes import make_shapes_folder

    root = tmp_path_factory.mktemp("faults")
    folder = make_shapes_folder(root / "tiny", per_class=6, size=24, shapes=("circle", "square"))
    run = root / "run"
    list(train(tiny_config(folder, run, max_steps=2, monitor_every=0)))
    return run


def _fake_onnx(
    method, size, path, weights=None
):  # the real one takes seconds; the I/O is what is tested here
    path.write_bytes(b"onnx stand-in")
    return {"file": path.name}


@pytest.mark.parametrize("kind", sorted(FAULTS))
@pytest.mark.parametrize("call", ["weights", "embeddings", "manifest", "rename"])
def test_export_write_fault_keeps_the_previous_bundle(
    trained_run, tmp_path, monkeypatch, kind, call
):
    monkeypatch.setattr(ex, "write_onnx", _fake_onnx)
    bundle = ex.export_bundle(trained_run, tmp_path / "bundle")
    before = _digest(bundle)
    real_replace = os.replace

    def fail(*args, **kwargs):
        raise _fault(kind)

    def fail_rename_in(src, dst):
        if Path(dst) == bundle and Path(src).name.startswith(".tmp-"):  # the new one, not the old
            raise _fault(kind)
        return real_replace(src, dst)

    real_write_json = ex._write_json
    if call == "weights":
        monkeypatch.setattr(ex, "_save_tensors", fail)
    elif call == "embeddings":
        monkeypatch.setattr(np, "save", fail)
    elif call == "manifest":
        monkeypatch.setattr(
            ex,
            "_write_json",
            lambda p, d: fail() if p.name == "manifest.json" else real_write_json(p, d),
        )
    else:
        monkeypatch.setattr(os, "replace", fail_rename_in)
    with pytest.raises(ExportError, match=f"{FAULTS[kind][2]}; nothing was written there"):
        ex.export_bundle(trained_run, bundle)
    monkeypatch.setattr(os, "replace", real_replace)
    assert _digest(bundle) == before
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]  # no temp folder left beside it
    manifest = ex.read_manifest(bundle)
    assert manifest["files"].keys() <= set(before)
    assert json.loads((bundle / "manifest.json").read_text())["format"] == ex.FORMAT
