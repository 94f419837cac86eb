"""A real training process for the kill loop: ``python kill_child.py CONFIG.json [RUN_DIR]``.

Trains the config (or resumes ``RUN_DIR``) with :func:`sslstudio.core.train.trainer.train`. When
``SSLSTUDIO_KILL_AT`` names a point, the child stops *at* that point, touches the file named by
``SSLSTUDIO_KILL_MARKER`` and sleeps, so the parent can SIGKILL it at that exact moment:

- ``step:K``: mid-step K, after the forward pass, before the backward pass and optimizer step;
- ``checkpoint:K``: mid-write of checkpoint K (weights and optimizer state on disk in the temp
  folder, meta.json not yet written, nothing renamed in);
- ``epoch:E``: at the boundary after epoch E (its summary row logged, the next step not begun);
- ``started``: right after ``RunStarted``, marker touched and training continues (bench: the
  parent kills at a random moment after it).

Without ``SSLSTUDIO_KILL_AT`` the child trains to the end. These variables are read only here.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

CHILD = Path(__file__).resolve()
ROOT = CHILD.parents[2]


def _hold(marker: Path) -> None:
    marker.write_text(str(os.getpid()))
    time.sleep(600)  # the parent kills us long before
    raise SystemExit("kill_child: the parent never killed this process")


def start_child(
    cfg_path: Path, run_dir: Path | None, kill_at: str, marker: Path
) -> subprocess.Popen:
    """Start a training child (the parent side); its output goes to ``marker`` + ``.log``."""
    env = {**os.environ, "SSLSTUDIO_KILL_AT": kill_at, "SSLSTUDIO_KILL_MARKER": str(marker)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    marker.unlink(missing_ok=True)
    args = [sys.executable, str(CHILD), str(cfg_path)] + ([str(run_dir)] if run_dir else [])
    log = open(marker.with_name(marker.name + ".log"), "ab")  # noqa: SIM115 (the child owns it)
    return subprocess.Popen(args, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)


def wait_marker(proc: subprocess.Popen, marker: Path, timeout: float = 240) -> bool:
    """True once the child touched ``marker``; False if it exited first."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if marker.exists() and marker.read_text():
            return True
        if proc.poll() is not None:
            return marker.exists() and bool(marker.read_text())
        time.sleep(0.01)
    proc.kill()
    raise TimeoutError(f"child {proc.pid} reached no kill point in {timeout} s")


def sigkill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)


def write_config(cfg, path: Path) -> Path:
    path.write_text(json.dumps(cfg.to_dict()), encoding="utf-8")
    return path


def main(argv: list[str]) -> int:
    from sslstudio.config import RunConfig
    from sslstudio.core.events import EpochEnded, RunStarted
    from sslstudio.core.methods import METHODS
    from sslstudio.core.train import checkpoints as ckpt
    from sslstudio.core.train.trainer import train

    cfg = RunConfig.load(Path(argv[0]))
    resume = argv[1] if len(argv) > 1 else None
    where = os.environ.get("SSLSTUDIO_KILL_AT", "")
    marker = Path(os.environ.get("SSLSTUDIO_KILL_MARKER", "kill-marker"))
    kind, _, arg = where.partition(":")
    at = int(arg) if arg else -1

    state = {"next": 0}  # the step the next training_step call computes
    if kind == "step":
        cls = METHODS[cfg.method]
        real_step = cls.training_step

        def held_step(self, batch):
            out = real_step(self, batch)  # forward done; backward and update not yet
            state["next"] += 1
            if state["next"] - 1 == at:
                _hold(marker)
            return out

        cls.training_step = held_step

    if kind == "checkpoint":
        real_write = ckpt._write_file

        def held_write(path: Path, writer) -> None:
            real_write(path, writer)
            if path.name == "state.pt" and path.parent.name.startswith(f".tmp-step_{at:07d}-"):
                _hold(marker)

        ckpt._write_file = held_write

    for ev in train(cfg, resume_from=resume):
        if isinstance(ev, RunStarted):
            state["next"] = ev.start_step
            if kind == "started":
                marker.write_text(str(os.getpid()))
        if kind == "epoch" and isinstance(ev, EpochEnded) and ev.epoch == at:
            _hold(marker)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
