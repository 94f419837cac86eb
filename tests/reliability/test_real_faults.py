"""Full disks as the OS really reports them, not injected ``OSError``s.

A child process runs under ``RLIMIT_FSIZE`` (SIGXFSZ ignored), so a write past the limit fails
with EFBIG through the real library code: torch's zip writer ("unexpected pos"), safetensors'
Rust writer ("os error 27"), numpy, plain Python. ``/dev/full`` (ENOSPC on every write) stands
in where a path can point at it. Each time: one clear line on stderr (no traceback), the
previous good file or checkpoint intact, and no temp file left behind.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from sslstudio.cli.main import main
from tests.shapes import make_shapes_folder

TINY = ["--backbone", "tiny_cnn", "--image-size", "16", "--batch-size", "8", "--threads", "1"]


def _limited(limit: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of death, as after ulimit
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def _child(args: list[str], limit: int | None = None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=180,
        preexec_fn=None if limit is None else _limited(limit),
        env={**os.environ, "PYTHONPATH": os.getcwd()},
        **kw,
    )


def _one_clear_line(err: str, *expected: str) -> str:
    lines = [x for x in err.strip().splitlines() if x.strip()]
    assert "Traceback" not in err and len(lines) >= 1, err
    line = lines[-1]
    assert line.startswith("sslstudio: error:"), err
    for text in expected:
        assert text in line, err
    return line


def _temps(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob(".tmp*"))


SAVE = textwrap.dedent(
    """
    import json, resource, sys, torch
    from pathlib import Path
    from sslstudio.core.train import checkpoints as ckpt
    small, huge = {"w": torch.ones(8)}, {"w": torch.zeros(60_000)}
    # the shape of the trainer's state.pt (a state without an optimizer counts as damaged)
    opt = {"optimizer": {"state": {}, "param_groups": [{"params": [0], "lr": 0.1}]}}
    hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
    out = {}
    for case in sys.argv[2:]:
        name, big = case.split(":")
        run = Path(sys.argv[1]) / case.replace(":", "-")
        ckpt.save_checkpoint(run, name, small, {**opt, "opt": torch.ones(4)}, {"step": 1})
        resource.setrlimit(resource.RLIMIT_FSIZE, (50_000, hard))  # 240 kB no longer fit
        state = {**opt, "opt": torch.ones(4)} if big == "model" else {**opt, **huge}
        model = huge if big == "model" else small
        try:
            ckpt.save_checkpoint(run, name, model, state, {"step": 2})
            out[case] = {"type": None}
        except Exception as exc:
            out[case] = {"type": type(exc).__name__, "message": str(exc)}
        resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
    print(json.dumps(out))
    """
)
# a new name and a re-save of final; the weights (safetensors' writer) or the optimizer state
# (torch's zip writer) too big
CASES = [f"{name}:{big}" for name in ("step_000002", "final") for big in ("model", "state")]


def test_a_checkpoint_on_a_full_disk_is_one_clear_error_and_keeps_the_last(tmp_path):
    from sslstudio.core.train import checkpoints as ckpt

    done = _child(["-c", SAVE, str(tmp_path), *CASES], limit=1 << 30)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    results = json.loads(done.stdout)
    for case in CASES:
        name, got = case.split(":")[0], results[case]
        assert got["type"] == "CheckpointError", (case, got)  # RuntimeError, SafetensorError
        assert got["message"].startswith(f"could not save checkpoint {name}"), got
        assert "File too large. The previous checkpoint is intact" in got["message"], got
        run = tmp_path / case.replace(":", "-")
        assert _temps(run) == []  # removed at once, not at the next start
        model, _, meta = ckpt.load_checkpoint(run / "checkpoints" / name)
        assert meta["step"] == 1 and model["w"].shape == (8,)  # the previous save, whole


@pytest.fixture
def folder(tmp_path) -> Path:
    return make_shapes_folder(tmp_path / "imgs", per_class=6, size=16, shapes=("circle", "square"))


@pytest.fixture
def run(folder, tmp_path) -> Path:
    out = tmp_path / "run"
    assert (
        main(["train", str(folder), *TINY, "--max-steps", "2", "--quiet", "--out", str(out)]) == 0
    )
    return out


def test_training_on_a_full_disk_says_so_in_one_line_and_resumes_after(folder, tmp_path):
    out = tmp_path / "full"
    argv = ["-m", "sslstudio", "train", str(folder), *TINY, "--max-steps", "2", "--quiet"]
    done = _child([*argv, "--out", str(out)], limit=20_000)  # the log fits, the weights do not
    assert done.returncode != 0
    _one_clear_line(done.stderr, "could not save checkpoint", "File too large")
    assert _temps(out) == []
    again = _child(["-m", "sslstudio", "train", "--resume", str(out), "--quiet"])
    assert again.returncode == 0, again.stderr
    assert (out / "checkpoints" / "final" / "model.safetensors").is_file()


def test_a_metrics_log_on_dev_full_is_one_clear_line(folder, tmp_path, capsys):
    out = tmp_path / "devfull"
    out.mkdir()
    (out / "metrics.jsonl").symlink_to("/dev/full")  # before: read forever (endless zeros)
    argv = [*TINY, "--max-steps", "2", "--quiet", "--out", str(out)]
    assert main(["train", str(folder), *argv]) != 0  # in-process: ENOSPC from the real device
    _one_clear_line(capsys.readouterr().err, "metrics log", "No space left on device")
    assert list((out / "checkpoints").glob(".tmp*")) == []


def test_a_metrics_log_past_a_file_size_limit_is_one_clear_line(folder, tmp_path):
    out = tmp_path / "r"
    argv = ["-m", "sslstudio", "train", str(folder), *TINY, "--max-steps", "20", "--quiet"]
    # config.json (~1.2 kB) fits; the log passes 3 kB within 20 steps, before any checkpoint
    done = _child([*argv, "--checkpoint-every", "1000", "--out", str(out)], limit=3_000)
    assert done.returncode != 0
    _one_clear_line(done.stderr, "cannot write the metrics log", "File too large")


def test_embed_to_a_full_disk_keeps_the_old_file_and_leaves_no_temp(run, folder, tmp_path):
    out = tmp_path / "feats.npz"
    out.write_bytes(b"the previous result")
    done = _child(["-m", "sslstudio", "embed", str(run), str(folder), "-o", str(out)], limit=2000)
    assert done.returncode != 0
    _one_clear_line(done.stderr, f"could not write {out}", "File too large")
    assert out.read_bytes() == b"the previous result"
    assert sorted(p.name for p in tmp_path.glob(".tmp-*")) == []
    assert main(["embed", str(run), str(folder), "-o", str(out)]) == 0  # then space is freed
    with np.load(out, allow_pickle=False) as z:
        assert z["features"].shape[0] == 12


@pytest.mark.parametrize("zip", [False, True])
def test_export_to_a_full_disk_keeps_the_previous_bundle(run, tmp_path, zip):
    dest = tmp_path / ("b.zip" if zip else "b")
    flags = ["--zip"] if zip else []
    assert main(["export", str(run), "-o", str(dest), *flags]) == 0
    before = dest.stat().st_mtime_ns
    done = _child(["-m", "sslstudio", "export", str(run), "-o", str(dest), *flags], limit=30_000)
    assert done.returncode != 0
    _one_clear_line(done.stderr, "export to", "nothing was written there")
    assert dest.stat().st_mtime_ns == before
    assert [p.name for p in tmp_path.glob(".*") if p.name.startswith((".tmp-", ".old-"))] == []


def test_a_killed_exports_temp_folders_are_removed_by_the_next_export(run, tmp_path):
    dest = tmp_path / "b"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    ).stdout.strip()
    for name in (f".tmp-b-{dead}-x1y2", f".tmp-b-{dead}-z9.zip", f".tmp-other-{dead}-q"):
        (tmp_path / name).mkdir()
    live = tmp_path / f".tmp-b-{os.getpid()}-live"  # a running export's: left alone
    live.mkdir()
    assert main(["export", str(run), "-o", str(dest)]) == 0
    left = sorted(p.name for p in tmp_path.glob(".tmp-*"))
    assert left == sorted([f".tmp-other-{dead}-q", live.name])


def test_a_decoded_cache_that_cannot_be_written_trains_from_memory(folder, tmp_path):
    home = Path(os.environ["SSLSTUDIO_HOME"])
    cache = home / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    (cache / ".tmp-999999999-stray.npy").write_bytes(b"left by a killed run")
    out = tmp_path / "r"
    argv = ["-m", "sslstudio", "train", str(folder), *TINY, "--max-steps", "1", "--quiet"]
    # 12 images of 16 px decode to 9 kB; the limit lets checkpoints through, not the cache
    done = _child([*argv, "--out", str(out)], limit=8_000)
    assert done.returncode == 0 or "checkpoint" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert [p.name for p in cache.glob(".tmp-*")] == []
