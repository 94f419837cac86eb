"""A run on several GPUs: ``torchrun`` as a subprocess, its events followed by the window.

Each rank is a process of its own (one per GPU), so the window cannot iterate the trainer as
it does for one device. It starts ``python -m torch.distributed.run --standalone
--nproc_per_node N -m sslstudio train --distributed --events-json``; rank 0 prints every event
as one JSON line on stdout, and this worker turns the lines back into events: the Train page
cannot tell the difference. Stop sends SIGINT to torchrun, which forwards it to every rank;
they agree to stop within 8 steps and rank 0 checkpoints. Pausing is not offered (a paused rank
would hold the others in a collective until its timeout). The ranks' stderr goes to
``torchrun.log`` beside the run (and is the failure message's source).

Runs on a QThread through :class:`~sslstudio.gui.run.worker.ThreadJob`, as ``TrainingWorker`` does.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from PySide6.QtCore import QObject, Signal, Slot

from sslstudio.config import RunConfig

FINAL = ("RunFinished", "RunStopped", "RunFailed")


def torchrun_command(config_json: str, processes: int, resume_from: str | None) -> list[str]:
    """The command line; ``sslstudio train`` flags as a user would type them under torchrun."""
    head = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={processes}",
        "-m",
        "sslstudio",
        "train",
    ]
    tail = ["--resume", resume_from] if resume_from else ["--config", config_json]
    return [*head, *tail, "--distributed", "--events-json", "--quiet"]


class TorchrunWorker(QObject):
    """Same signals and controls as ``TrainingWorker``: ``event``, ``failed``, ``finished``."""

    event = Signal(object)
    failed = Signal(str)
    finished = Signal()
    can_pause = False

    def __init__(self, cfg: RunConfig, resume_from: str | Path | None, processes: int) -> None:
        super().__init__()
        self.cfg, self.processes = cfg, processes
        self.resume_from = str(resume_from) if resume_from else None
        self.details = ""
        self._proc: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()
        self._stop_requested = False

    @Slot()
    def run(self) -> None:
        from sslstudio.core.events import from_json

        folder = Path(tempfile.mkdtemp(prefix="sslstudio-torchrun-"))
        config_json = folder / "config.json"
        config_json.write_text(self.cfg.to_json(), encoding="utf-8")
        log_path = folder / "torchrun.log"
        ended, run_dir = "", ""
        try:
            with open(log_path, "w", encoding="utf-8") as log:
                with self._lock:
                    if self._stop_requested:
                        return
                    self._proc = subprocess.Popen(
                        torchrun_command(str(config_json), self.processes, self.resume_from),
                        stdout=subprocess.PIPE,
                        stderr=log,
                        text=True,
                        bufsize=1,
                        env={
                            **os.environ,
                            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
                        },
                    )
                assert self._proc.stdout is not None
                for line in self._proc.stdout:
                    if not line.startswith('{"type"'):  # events.to_json's lines
                        continue  # a library's print: not ours to show
                    try:
                        ev = from_json(line)
                    except ValueError:
                        continue
                    name = type(ev).__name__
                    run_dir = getattr(ev, "run_dir", "") or run_dir
                    ended = name if name in FINAL else ended
                    self.event.emit(ev)
                code = self._proc.wait()
            self.details = _tail(log_path)
            if run_dir:  # the ranks' log beside the run, for later reading
                with contextlib.suppress(OSError):
                    (Path(run_dir) / "torchrun.log").write_text(
                        log_path.read_text(encoding="utf-8")
                    )
            if not ended:
                self.failed.emit(
                    f"the torchrun run ended without finishing (exit code {code}): "
                    f"{_reason(_tail(log_path, 4000))}"
                )
        except OSError as exc:
            self.failed.emit(f"could not start torchrun: {exc}")
        finally:
            shutil.rmtree(
                folder, ignore_errors=True
            )  # the config copy and the log (kept beside the run)
            self.finished.emit()

    def request_stop(self) -> None:
        with self._lock:
            self._stop_requested = True
            if self._proc is not None and self._proc.poll() is None:
                if sys.platform == "win32":  # no signal reaches the ranks there: they are ended,
                    self._proc.terminate()  # and the run resumes from its last periodic checkpoint
                else:
                    self._proc.send_signal(signal.SIGINT)  # torchrun forwards it to every rank

    def set_paused(self, paused: bool) -> None:  # noqa: ARG002 (the TrainingWorker interface)
        return  # not offered: see the module docstring


def _reason(log: str) -> str:
    """The ranks' own one-line error (``sslstudio: error: …``), else the last Python exception."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    ours = [line for line in lines if "sslstudio: error:" in line]
    if ours:
        return ours[-1].split("sslstudio: error:", 1)[1].strip()
    errors = [line for line in lines if line.split(":", 1)[0].endswith(("Error", "Exception"))]
    return errors[-1] if errors else "see torchrun.log beside the run"


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
