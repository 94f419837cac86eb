"""The runs folder as plain records: what each run was, how far it got, how it ended.

Everything here reads files (config.json, metrics.jsonl, checkpoint metadata) and is meant to
run off the GUI thread (a long run's metrics log holds hundreds of thousands of lines). Qt-free;
the Runs page shows the results.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from sslstudio.core.events import (
    Event,
    MonitorLogged,
    RunFailed,
    RunFinished,
    RunStarted,
    RunStopped,
    StepLogged,
    decode,
)

RUNNING, FINISHED, STOPPED, FAILED, DAMAGED = "running", "finished", "stopped", "failed", "damaged"


@dataclass(frozen=True)
class RunSummary:
    """One row of the history table."""

    path: str
    created: float  # seconds since the epoch (config.json's modification time)
    method: str = "?"
    backbone: str = "?"
    image_size: int | None = None
    steps_done: int = 0
    total_steps: int | None = None  # None until the run got past its preparation
    final_loss: float | None = None
    last_knn: float | None = None
    state: str = STOPPED
    message: str = ""  # why it failed, or why it cannot be read
    checkpoint_step: int | None = None  # the newest checkpoint's step

    @property
    def name(self) -> str:
        return Path(self.path).name

    @property
    def resumable(self) -> bool:
        return self.state in (STOPPED, FAILED)


@dataclass(frozen=True)
class Curves:
    """A run's logged values, as arrays (empty when the run logged nothing)."""

    step: np.ndarray = field(default_factory=lambda: np.zeros(0))
    loss: np.ndarray = field(default_factory=lambda: np.zeros(0))
    knn_step: np.ndarray = field(default_factory=lambda: np.zeros(0))
    knn: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def smoothed_loss(self) -> np.ndarray:
        """A trailing mean over ~2 % of the run (1 to 500 steps): the trend, for comparing runs."""
        n = self.loss.shape[0]
        if n == 0:
            return self.loss
        w = min(500, max(1, n // 50))
        c = np.cumsum(np.concatenate(([0.0], self.loss)))  # (n + 1,)
        idx = np.arange(1, n + 1)
        lo = np.maximum(idx - w, 0)
        return (c[idx] - c[lo]) / (idx - lo)


@dataclass(frozen=True)
class RunDetails:
    summary: RunSummary
    config: dict[str, Any]  # config.json as written (empty if unreadable)
    curves: Curves
    checkpoints: list[tuple[str, int]]  # (folder name, step), newest first
    events: tuple[Event, ...] = ()  # the whole log, replayed into the Train page's plots


def find_runs(root: Path, extra: tuple[str, ...] = ()) -> list[Path]:
    """Run folders (with a config.json) directly under ``root``, plus ``extra`` ones that still
    exist."""
    found: dict[str, Path] = {}
    with contextlib.suppress(OSError):
        for p in root.iterdir():
            if (p / "config.json").is_file():
                found[str(p.resolve())] = p
    for e in extra:
        p = Path(e)
        if (p / "config.json").is_file():
            found.setdefault(str(p.resolve()), p)
    return list(found.values())


def is_locked(run_dir: Path) -> bool:
    """True when another process (or another part of this one) holds the run's lock: it is training.

    Only looks (a shared lock for an instant): never refuses a trainer starting now, never sees
    another listing's look as a trainer.
    """
    from sslstudio.core.train.runs import RunLock

    return RunLock.is_held(Path(run_dir))


def summarize(
    run_dir: Path, owned: tuple[str, ...] = (), events: list[Event] | None = None
) -> RunSummary:
    """The history row of ``run_dir``; ``owned`` are the run folders this window is training."""
    from sslstudio.core.train.runs import load_run_config
    from sslstudio.errors import ConfigError

    run_dir = Path(run_dir)
    try:
        created = (run_dir / "config.json").stat().st_mtime
    except OSError:
        created = 0.0
    try:
        cfg = load_run_config(run_dir)
    except ConfigError as exc:
        return RunSummary(str(run_dir), created, state=DAMAGED, message=str(exc))
    m = _summarize(events) if events is not None else _metrics_tail(run_dir / "metrics.jsonl")
    total, last_step, loss, knn, ending, message = (
        m.total,
        m.last_step,
        m.loss,
        m.knn,
        m.ending,
        m.message,
    )
    ckpt_step = _newest_checkpoint_step(run_dir)
    done = max(int(last_step) + 1 if last_step is not None else 0, ckpt_step or 0)
    if str(run_dir.resolve()) in owned or is_locked(run_dir):
        state = RUNNING
    elif ending == FINISHED or (run_dir / "checkpoints" / "final").is_dir():
        state = FINISHED
    elif ending == FAILED:
        state = FAILED
    else:  # stopped on request, or killed (no ending written): both resume from the checkpoint
        state = STOPPED
    return RunSummary(
        path=str(run_dir),
        created=created,
        method=cfg.method,
        backbone=cfg.backbone,
        image_size=cfg.image_size,
        steps_done=done,
        total_steps=total,
        final_loss=_finite(loss),
        last_knn=_finite(knn),
        state=state,
        message=message,
        checkpoint_step=ckpt_step,
    )


@dataclass(frozen=True)
class _Metrics:
    """What the history table needs from a metrics log, and how far the log has been read."""

    inode: int = 0
    offset: int = 0
    total: int | None = None
    last_step: int | None = None
    loss: float | None = None
    knn: float | None = None
    ending: str = ""
    message: str = ""

    def add(self, ev: Event) -> _Metrics:
        if isinstance(ev, RunStarted):
            return replace(self, total=ev.total_steps, ending="", message="")
        if isinstance(ev, StepLogged):
            return replace(self, last_step=ev.step, loss=ev.loss)
        if isinstance(ev, MonitorLogged) and ev.knn_top1 is not None:
            return replace(self, knn=ev.knn_top1)
        if isinstance(ev, RunFailed):
            return replace(self, ending=FAILED, message=ev.message)
        if isinstance(ev, (RunStopped, RunFinished)):
            return replace(self, ending=STOPPED if isinstance(ev, RunStopped) else FINISHED)
        return self


_tails: dict[str, _Metrics] = {}
_tails_lock = threading.Lock()


def _summarize(events: list[Event]) -> _Metrics:
    m = _Metrics()
    for ev in events:
        m = m.add(ev)
    return m


def _metrics_tail(path: Path) -> _Metrics:
    """The log's summary, reading only what was appended since the last call (a refresh every few
    seconds must not re-parse a million-line log). A rewritten log (resume truncates it through a
    new file) has a new inode and is read again from the start."""
    try:
        st = path.stat()
    except OSError:
        return _Metrics()
    key = str(path)
    with _tails_lock:
        m = _tails.get(key)
    if m is None or m.inode != st.st_ino or st.st_size < m.offset:
        m = _Metrics(inode=st.st_ino)
    if st.st_size > m.offset:
        try:
            with open(path, "rb") as fh:
                fh.seek(m.offset)
                data = fh.read(st.st_size - m.offset)
        except OSError:
            return m
        end = data.rfind(b"\n") + 1  # a line being written is read next time
        for line in data[:end].splitlines():
            try:
                row = json.loads(line)
                m = m.add(decode(row))
            except (ValueError, TypeError):
                continue  # a line cut by a kill, or not an event
        m = replace(m, offset=m.offset + end)
    with _tails_lock:
        _tails[key] = m
    return m


def list_runs(
    root: Path, extra: tuple[str, ...] = (), owned: tuple[str, ...] = ()
) -> list[RunSummary]:
    """Every run under ``root`` (and ``extra``), newest first."""
    runs = [summarize(p, owned) for p in find_runs(root, extra)]
    return sorted(runs, key=lambda r: (r.created, r.path), reverse=True)


def last_resumable(root: Path) -> str | None:
    """The newest run under ``root`` if it can go on (after a restart: Resume), else None."""
    runs = find_runs(root)
    if not runs:
        return None
    newest = max(runs, key=lambda p: ((p / "config.json").stat().st_mtime, str(p)))
    summary = summarize(newest)
    if summary.state == FAILED and summary.checkpoint_step is None:
        return None
    return summary.path if summary.resumable else None


def load_details(run_dir: Path, owned: tuple[str, ...] = ()) -> RunDetails:
    """Summary, config and curves of one run (one read of its metrics log)."""
    from sslstudio.core.train.runs import read_events

    run_dir = Path(run_dir)
    events = read_events(run_dir)
    summary = summarize(run_dir, owned, events)
    try:
        config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
        config = config if isinstance(config, dict) else {}
    except (OSError, ValueError):
        config = {}
    return RunDetails(summary, config, curves_from(events), _checkpoints(run_dir), tuple(events))


def curve_points(ev: Event) -> list[tuple[str, float, float]]:
    """The points ``ev`` adds to a run's curves, as (series, step, value): the one reading of
    events into curves, for the live Train page and for the Runs page replaying a finished run's
    decoded log. Series: loss, lr, ips (images/s), wait (% of the step), std, rank, knn, view, check
    (the check folder's kNN)."""
    if isinstance(ev, StepLogged):
        return [
            ("loss", ev.step, ev.loss),
            ("lr", ev.step, ev.lr),
            ("ips", ev.step, ev.images_per_s),
            ("wait", ev.step, 100 * ev.data_wait),
        ]
    if isinstance(ev, MonitorLogged):
        points = [("std", ev.step, ev.std_sqrt_d), ("rank", ev.step, ev.rankme)]
        if ev.knn_top1 is not None:
            points.append(("knn", ev.step, ev.knn_top1))
        if ev.view_top1 is not None:
            points.append(("view", ev.step, ev.view_top1))
        if ev.check_top1 is not None:
            points.append(("check", ev.step, ev.check_top1))
        return points
    return []


def curves_from(events: list[Event]) -> Curves:
    """The loss and kNN curves the Runs page draws, replayed from the run's events."""
    series: dict[str, list[tuple[float, float]]] = {"loss": [], "knn": []}
    for ev in events:
        for name, step, value in curve_points(ev):
            if name in series:
                series[name].append((step, value))
    steps, knn = series["loss"], series["knn"]
    s = np.asarray(steps, dtype=np.float64).reshape(-1, 2)  # (n, 2): step, loss
    k = np.asarray(knn, dtype=np.float64).reshape(-1, 2)
    return Curves(step=s[:, 0], loss=s[:, 1], knn_step=k[:, 0], knn=k[:, 1])


def flatten_config(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"optim": {"lr": 0.1}}`` -> ``{"optim.lr": 0.1}``, keys in their written order."""
    out: dict[str, Any] = {}
    for key, value in d.items():
        if key == "version":
            continue
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten_config(value, f"{name}."))
        else:
            out[name] = value
    return out


def delete_run(run_dir: Path) -> None:
    """Delete a run folder, never one being trained: its lock is held while the files go.

    Raises:
        ValueError: ``run_dir`` is not a run folder (no config.json): nothing is deleted.
        RunLockedError: the run is training.
    """
    from sslstudio.core.train.runs import RunLock

    run_dir = Path(run_dir)
    if not (run_dir / "config.json").is_file():
        raise ValueError(f"{run_dir} is not a run folder (no config.json); nothing was deleted")
    lock = RunLock(run_dir).acquire()  # raises RunLockedError while a trainer holds it
    try:
        for child in run_dir.iterdir():
            if child.name == ".lock":
                continue  # Windows cannot delete a file we hold open; it goes last
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    finally:
        lock.release()
    shutil.rmtree(run_dir)


def _newest_checkpoint_step(run_dir: Path) -> int | None:
    ckpts = _checkpoints(run_dir)
    return max((s for _, s in ckpts), default=None)


def _checkpoints(run_dir: Path) -> list[tuple[str, int]]:
    if not (run_dir / "checkpoints").is_dir():
        return []  # no torch import for runs that never saved
    from sslstudio.core.train.checkpoints import list_checkpoints, read_meta
    from sslstudio.errors import CheckpointError

    out = []
    for p in list_checkpoints(run_dir):
        try:
            out.append((p.name, int(read_meta(p)["step"])))
        except (CheckpointError, ValueError, TypeError, KeyError):
            continue  # damaged: the trainer reports it when resuming
    return out


def _finite(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def format_age(created: float, now: float) -> str:
    """A date for the table: 'today 14:05', 'yesterday 09:12', '2025-03-04 17:30'."""
    import time

    t, n = time.localtime(created), time.localtime(now)
    clock = time.strftime("%H:%M", t)
    if (t.tm_year, t.tm_yday) == (n.tm_year, n.tm_yday):
        return f"today {clock}"
    if 0 < now - created < 2 * 86400 and time.localtime(now - 86400).tm_yday == t.tm_yday:
        return f"yesterday {clock}"
    return time.strftime("%Y-%m-%d %H:%M", t)


def owned_paths(*dirs: str | os.PathLike[str] | None) -> tuple[str, ...]:
    return tuple(str(Path(d).resolve()) for d in dirs if d)
