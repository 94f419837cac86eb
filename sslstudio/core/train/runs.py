"""Run folders: where a run lives, who may write it, and its append-only metrics log.

```
<run>/config.json      the RunConfig, written once (atomically) when the run is created
<run>/metrics.jsonl    one JSON object per line: steps, monitor rows, epochs, stops; an event's
                       row is its ``events.encode`` dict plus the row's "kind"
<run>/checkpoints/     see checkpoints.py
<run>/.lock            held (flock) by the process training this run
```
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
import time
from pathlib import Path
from typing import Any

from sslstudio.config import RunConfig
from sslstudio.core.events import KINDS, Event, decode, encode
from sslstudio.errors import CheckpointError, ConfigError, SSLStudioError
from sslstudio.paths import runs_dir

# fields that change the network's shape or meaning: a resume must not silently change them
ARCHITECTURE_FIELDS = ("method", "backbone", "small_stem", "image_size", "method_options")


class RunLockedError(SSLStudioError):
    pass


def new_run_dir(cfg: RunConfig) -> Path:
    if cfg.out:
        path = Path(cfg.out)
        if (path / "config.json").exists():
            raise ConfigError(
                f"{path} already holds a run; resume it with --resume or choose another --out"
            )
    else:
        folder = re.sub(r"[^A-Za-z0-9_-]+", "-", Path(cfg.data_root).name or "images").strip("-")[
            :40
        ]
        path = runs_dir() / f"{time.strftime('%Y%m%d-%H%M%S')}-{cfg.method}-{folder}"
        n = 1
        while path.exists():
            n += 1
            path = path.with_name(f"{path.name.rsplit('~', 1)[0]}~{n}")
    path.mkdir(parents=True, exist_ok=True)
    return path  # config.json follows once the run really starts (write_run_config)


def write_run_config(run_dir: Path, cfg: RunConfig) -> None:
    """Make ``run_dir`` a run: written once its images and model are ready, so a start that
    fails (no usable images, bad weights, a bad option) leaves ``--out`` free to use again."""
    if not (run_dir / "config.json").exists():
        write_json_atomic(run_dir / "config.json", cfg.to_dict())


def discard_unstarted(run_dir: Path, created: bool) -> None:
    """After a start that failed before ``write_run_config``: remove the lock file, and the
    folder too when this start made it (anything else in it stays)."""
    if (run_dir / "config.json").exists():
        return
    with contextlib.suppress(OSError):
        (run_dir / ".lock").unlink(missing_ok=True)
        if created:
            run_dir.rmdir()


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise SSLStudioError(
            f"could not write {path}: {os.strerror(exc.errno) if exc.errno else exc}"
        ) from exc


def load_run_config(run_dir: Path) -> RunConfig:
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise ConfigError(f"{run_dir} is not a run folder (no config.json)")
    return RunConfig.load(path)


def config_differences(saved: RunConfig, wanted: RunConfig) -> list[str]:
    out = []
    for name in ARCHITECTURE_FIELDS:
        a, b = getattr(saved, name), getattr(wanted, name)
        if a != b:
            out.append(f"{name}: checkpoint {a!r} vs requested {b!r}")
    return out


class RunLock:
    """An exclusive lock on a run folder; a second process is refused (RELIABILITY 22).

    Others only *look* (:meth:`is_held`, the Runs page's listing): a look takes a shared lock
    for an instant, which never blocks another look. A trainer that arrives during such an
    instant waits for it (``grace`` seconds at most) instead of being refused: a listing must
    never make a resume fail, and two listings must never see each other's look as a trainer
    (both happened: the Runs page showed a finished run as "running" until the next refresh).
    """

    GRACE_S = 2.0  # how long acquire() rides out other holders before it refuses

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / ".lock"
        self._fh: Any = None

    def acquire(self, grace: float | None = None) -> RunLock:
        """Hold the lock, or raise :class:`RunLockedError` once ``grace`` seconds (default
        :attr:`GRACE_S`) have passed with another holder."""
        deadline = time.monotonic() + (self.GRACE_S if grace is None else grace)
        self._fh = open(self.path, "a+")  # noqa: SIM115 (held for the life of the run)
        while True:
            try:
                _lock(self._fh, exclusive=True)
                return self
            except OSError as exc:
                if isinstance(exc, BlockingIOError) and time.monotonic() < deadline:
                    time.sleep(0.01)  # somebody holds it: a look passes in milliseconds
                    continue
                self.release()
                raise RunLockedError(
                    f"run {self.path.parent} is being trained by another SSL Studio process"
                ) from exc

    def release(self) -> None:
        if self._fh is not None:
            self._fh.close()  # closing drops the lock
            self._fh = None

    @staticmethod
    def is_held(run_dir: Path) -> bool:
        """True while a trainer (in this process or another) holds ``run_dir``'s lock.

        Creates and writes nothing (a read-only run folder can be looked at): a folder without a
        ``.lock`` file was never trained; a lock file this user cannot open tells nothing: False.
        """
        path = Path(run_dir) / ".lock"
        if not path.exists():
            return False
        try:
            fh = open(path, "rb")  # noqa: SIM115 (closed below); reading is enough to lock
        except OSError:
            return False
        try:
            _lock(fh, exclusive=False)
        except BlockingIOError:
            return True
        except OSError:
            return False
        finally:
            fh.close()
        return False


_LOOKS = threading.Lock()  # Windows has no shared lock: this process's looks take turns


def _lock(fh: Any, exclusive: bool) -> None:
    """Lock ``fh`` at once or raise BlockingIOError; ``exclusive=False``: a shared lock (a look)."""
    try:
        import fcntl
    except ImportError:  # Windows: msvcrt locks a byte range, always exclusively
        import msvcrt

        with contextlib.nullcontext() if exclusive else _LOOKS:
            fh.seek(0)  # every holder locks the same first byte
            try:
                msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
            except OSError as exc:
                raise BlockingIOError(str(exc)) from exc
            if not exclusive:  # a look lets go at once
                fh.seek(0)
                msvcrt.locking(fh.fileno(), msvcrt.LK_UNLCK, 1)
        return
    fcntl.flock(fh.fileno(), (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)


class MetricsLog:
    """Append-only JSON lines. On resume, rows past the checkpoint are dropped first, so the
    log has neither gaps nor duplicates however often the run was killed."""

    def __init__(self, path: Path, resume_step: int | None) -> None:
        self.path = path
        # a regular file only: a log pointed at a device (/dev/full, /dev/zero) reads forever
        if resume_step is not None and path.is_file():
            keep = []
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut by a kill
                if row.get("step", -1) < resume_step:
                    keep.append(line)
            tmp = path.with_name(".tmp-metrics.jsonl")
            try:
                tmp.write_text("".join(x + "\n" for x in keep), encoding="utf-8")
                os.replace(tmp, path)
            except OSError as exc:  # disk full, read-only: the log stays as it was
                tmp.unlink(missing_ok=True)
                raise CheckpointError(
                    f"cannot write the metrics log {path}: "
                    f"{os.strerror(exc.errno) if exc.errno else exc}"
                ) from exc
        try:
            self._fh = open(path, "a", encoding="utf-8")  # noqa: SIM115 (held for the life of the run)
        except OSError as exc:
            raise CheckpointError(f"cannot write the metrics log {path}: {exc}") from exc

    def write(self, kind: str, **row: Any) -> None:
        try:
            self._fh.write(json.dumps({"kind": kind, **row}) + "\n")
            self._fh.flush()
        except OSError as exc:
            raise CheckpointError(
                f"cannot write the metrics log {self.path}: "
                f"{os.strerror(exc.errno) if exc.errno else exc}"
            ) from exc

    def write_event(self, ev: Event, **more: Any) -> None:
        """The event's row: its codec dict (see ``events.encode``), named by "kind" too so the
        rows of logs written before the codec and after it read alike; ``more``: log-only facts."""
        self.write(KINDS[type(ev)], **encode(ev), **more)

    def close(self) -> None:
        # after a failed write the buffer still holds the line: closing retries it and fails
        # again, and that failure was already reported
        try:
            self._fh.close()
        except OSError:
            with contextlib.suppress(OSError):
                self._fh.buffer.raw.close()  # type: ignore[attr-defined]


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / "metrics.jsonl"
    rows = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict):
                rows.append(row)
    return rows


def read_events(run_dir: Path) -> list[Event]:
    """The run's metrics log as events, through the one codec (``events.decode``), old logs
    included; rows that are not events (a cut line, a foreign object) are skipped."""
    events = []
    for row in read_metrics(run_dir):
        try:
            events.append(decode(row))
        except ValueError:
            continue
    return events
