"""Checkpoints that survive crashes: one folder per save, written aside then renamed in.

A checkpoint ``checkpoints/step_000200/`` holds
- ``model.safetensors``: every weight and buffer of the method (backbone, heads, EMA copies);
- ``state.pt``: optimizer state and RNG states, plain tensors and numbers, read back with
  ``torch.load(weights_only=True)`` (never unpickled);
- ``meta.json``: step, samples seen, the plan, the config, the folder fingerprint.

The folder is written as ``.tmp-*`` beside the final name, every file is fsynced, then
``os.replace`` puts it in place: a SIGKILL at any moment leaves the previous checkpoint
loadable; stray temp folders are removed on the next start.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from sslstudio.config import RunConfig
from sslstudio.core.train.runs import config_differences, load_run_config
from sslstudio.errors import CheckpointError, ConfigError, as_write_error

FORMAT_VERSION = 1
KEEP = 3  # most recent checkpoints kept besides "final"


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    meta: dict[str, Any]

    @property
    def step(self) -> int:
        return int(self.meta["step"])


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_file(path: Path, writer) -> None:
    """``writer(path)``, then fsync; a full disk raises ``OSError`` whichever library wrote."""
    try:
        writer(path)
    except Exception as exc:
        failure = as_write_error(exc)
        if failure is None:
            raise
        raise failure from exc
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def _torch_save(obj: Any, path: Path) -> None:
    # through a Python file: a short write then raises the real OSError (ENOSPC, EFBIG), which
    # torch chains to its own "unexpected pos" RuntimeError
    with open(path, "wb") as fh:
        torch.save(obj, fh)


def save_checkpoint(
    run_dir: Path,
    name: str,
    model_state: dict[str, torch.Tensor],
    train_state: dict[str, Any],
    meta: dict[str, Any],
) -> Path:
    """Write checkpoint ``name`` atomically; raises ``CheckpointError`` (disk full, read-only,
    ...)."""
    parent = run_dir / "checkpoints"
    final = parent / name
    tmp: Path | None = None
    old: Path | None = None
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=parent))
        tensors = {k: v.detach().to("cpu").contiguous() for k, v in model_state.items()}
        _write_file(tmp / "model.safetensors", lambda p: save_file(tensors, str(p)))
        _write_file(tmp / "state.pt", lambda p: _torch_save(train_state, p))
        body = json.dumps({**meta, "format_version": FORMAT_VERSION}, indent=2, sort_keys=True)
        _write_file(tmp / "meta.json", lambda p: p.write_text(body, encoding="utf-8"))
        _fsync_dir(tmp)
        if final.exists():  # re-saving the same step (e.g. "final"): move the old one aside first
            old = parent / f".old-{name}-{os.getpid()}"
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
        _fsync_dir(parent)
    except OSError as exc:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and old.exists() and not final.exists():
            with contextlib.suppress(OSError):  # else clean_stray puts it back on the next start
                os.replace(old, final)  # the second rename failed: the previous one goes back
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise CheckpointError(
            f"could not save checkpoint {name} in {parent}: {reason}. The previous checkpoint is "
            "intact."
        ) from exc
    return final


def prune(run_dir: Path, keep: int = KEEP) -> None:
    """Remove old step checkpoints beyond the ``keep`` most recent (``final`` is never removed)."""
    steps = sorted(
        (p for p in (run_dir / "checkpoints").glob("step_*") if p.is_dir()), key=lambda p: p.name
    )
    for p in steps[:-keep] if keep > 0 else steps:
        shutil.rmtree(p, ignore_errors=True)


def clean_stray(run_dir: Path) -> int:
    """Remove temp folders a killed save left behind; returns how many.

    A kill between the two renames of a re-save leaves ``.old-NAME-PID`` and no ``NAME``:
    that folder is the previous checkpoint, so it is renamed back, not removed.
    """
    n = 0
    for p in (run_dir / "checkpoints").glob(".*-*"):
        if p.name.startswith(".old-"):
            final = p.with_name(p.name[len(".old-") :].rsplit("-", 1)[0])
            if not final.exists():
                with contextlib.suppress(OSError):
                    os.replace(p, final)
                    n += 1
                    continue
        if p.name.startswith((".tmp-", ".old-")):
            shutil.rmtree(p, ignore_errors=True)
            n += 1
    return n


def read_meta(path: Path) -> dict[str, Any]:
    try:
        meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(
            f"checkpoint {path} is damaged: meta.json unreadable ({type(exc).__name__})"
        ) from exc
    step = meta.get("step") if isinstance(meta, dict) else None
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise CheckpointError(f"checkpoint {path} is damaged: meta.json lacks a valid step")
    return meta


def load_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any]]:
    """(model state, train state, meta) of one checkpoint; ``CheckpointError`` if damaged."""
    meta = read_meta(path)
    try:
        model_state = load_file(str(path / "model.safetensors"))
    except Exception as exc:  # safetensors raises its own error types for damaged files
        raise CheckpointError(f"checkpoint {path} is damaged: model.safetensors ({exc})") from exc
    try:
        train_state = torch.load(path / "state.pt", map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"checkpoint {path} is damaged: state.pt ({type(exc).__name__})"
        ) from exc
    problem = _train_state_problem(train_state) or _plan_problem(meta.get("plan"))
    if problem:  # loads safely yet holds the wrong things: as damaged as a truncated file
        raise CheckpointError(f"checkpoint {path} is damaged: {problem}")
    return model_state, train_state, meta


def _train_state_problem(state: Any) -> str | None:
    """What is wrong with a loaded ``state.pt`` (None when it has the shape we save)."""
    if not isinstance(state, dict) or not isinstance(state.get("optimizer"), dict):
        return "state.pt holds no optimizer state"
    opt = state["optimizer"]
    groups, per_param = opt.get("param_groups"), opt.get("state")
    if not isinstance(groups, list) or not groups or not isinstance(per_param, dict):
        return "state.pt's optimizer state lacks its parameter groups"
    ids: list[Any] = []
    for g in groups:
        if not isinstance(g, dict) or not isinstance(g.get("params"), list):
            return "state.pt's optimizer parameter groups are malformed"
        ids += g["params"]
    if any(not isinstance(i, int) or isinstance(i, bool) for i in ids) or len(set(ids)) != len(ids):
        return "state.pt's optimizer parameter ids are malformed"
    if not all(k in ids and isinstance(v, dict) for k, v in per_param.items()):
        return "state.pt's optimizer state names parameters it does not hold"
    rng = state.get("torch_rng")
    if rng is not None and not (isinstance(rng, torch.Tensor) and rng.dtype == torch.uint8):
        return "state.pt's random-number state is not a byte tensor"
    if "scaler" in state and not isinstance(state["scaler"], dict):
        return "state.pt's gradient-scaler state is malformed"
    return None


_PLAN_INTS = ("batch_size", "steps_per_epoch", "total_steps", "num_images", "warmup_steps")


def _plan_problem(plan: Any) -> str | None:
    if plan is None:
        return None  # written by hand or by a test: the trainer then plans afresh
    if not isinstance(plan, dict):
        return "meta.json's plan is not a table"
    bad = [k for k in _PLAN_INTS if not isinstance(plan.get(k), int) or plan[k] < 0]
    for k in ("batch_size", "steps_per_epoch"):
        if k not in bad and plan[k] < 1:
            bad.append(k)
    if not isinstance(plan.get("peak_lr"), (int, float)):
        bad.append("peak_lr")
    return f"meta.json's plan has no valid {', '.join(bad)}" if bad else None


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Checkpoint folders, newest (highest step) first; ``final`` ranks by its step."""
    found = []
    for p in (run_dir / "checkpoints").glob("*"):
        if p.is_dir() and not p.name.startswith("."):
            try:
                step = int(read_meta(p)["step"])
            except (CheckpointError, ValueError, TypeError):
                step = -1
            found.append((step, p.name == "final", p))
    return [p for _, _, p in sorted(found, key=lambda t: (t[0], t[1]), reverse=True)]


def latest_good(run_dir: Path) -> tuple[Checkpoint | None, list[str]]:
    """The newest checkpoint that loads, and a message for each damaged one seen."""
    skipped: list[str] = []
    found: Checkpoint | None = None
    for p in list_checkpoints(run_dir):
        try:
            if found is None:
                _, _, meta = load_checkpoint(p)
                found = Checkpoint(p, meta)
            else:
                read_meta(p)  # older ones: a cheap check, so damage is still reported
        except CheckpointError as exc:
            skipped.append(str(exc))
    return found, skipped


def resolve(
    run: str | Path,
    which: str | Path | None = "latest",
    *,
    not_a_run: type[Exception] = CheckpointError,
) -> tuple[Path, Path]:
    """``(run folder, checkpoint folder)``; ``run`` may itself be a checkpoint folder.

    ``which``: "latest" (or empty / None: the newest good checkpoint), a checkpoint's name, or
    a path to one. ``not_a_run``: the error raised when ``run`` is no run folder at all (the
    exporter raises its own kind).
    """
    run = Path(run).expanduser()
    if (run / "meta.json").is_file():
        return run.parent.parent, run
    if not (run / "config.json").is_file():
        raise not_a_run(f"{run} is not a run folder (no config.json)")
    if which is None or str(which) in ("", "latest"):
        found, _ = latest_good(run)
        if found is None:
            raise CheckpointError(f"run {run} has no usable checkpoint yet: train it first")
        return run, found.path
    for cand in (Path(which).expanduser(), run / "checkpoints" / str(which)):
        if (cand / "meta.json").is_file():
            return run, cand
    names = [p.name for p in list_checkpoints(run)]
    raise CheckpointError(
        f"no checkpoint {str(which)!r} in {run}; choose one of: {', '.join(names) or 'none yet'}"
    )


def restore(start: Checkpoint, method, opt, scaler) -> tuple[int, dict]:
    """Load ``start`` into the model, optimizer (and grad scaler); returns (step, the run's
    best-checkpoint record). The global RNG comes back too: methods drawing from it resume
    exactly."""
    model_state, train_state, _ = load_checkpoint(start.path)
    load_model_state(method, model_state, start.path)
    try:
        opt.load_state_dict(train_state["optimizer"])
        if "torch_rng" in train_state:
            torch.set_rng_state(train_state["torch_rng"])
        if scaler is not None and "scaler" in train_state:
            scaler.load_state_dict(train_state["scaler"])
    except (KeyError, ValueError, TypeError, RuntimeError) as exc:  # another optimizer's state
        raise CheckpointError(
            f"checkpoint {start.path} does not fit this run's optimizer ({exc}); resume from "
            "an older checkpoint or start a new run"
        ) from exc
    return int(start.meta["step"]), dict(start.meta.get("selection", {}))


def load_model_state(method: torch.nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    """Load all of ``state`` or nothing: another architecture raises ``CheckpointError`` naming the
    difference."""
    own = method.state_dict()
    wrong = [k for k in own if k not in state or tuple(state[k].shape) != tuple(own[k].shape)]
    extra = [k for k in state if k not in own]
    if wrong or extra:
        raise CheckpointError(
            f"checkpoint {path} belongs to another model: {len(wrong)} tensors missing or of "
            "another shape"
            f"{' (e.g. ' + wrong[0] + ')' if wrong else ''}, {len(extra)} unexpected; nothing was "
            "loaded"
        )
    method.load_state_dict(state, strict=True)


def open_for_resume(
    resume_from: Path, cfg: RunConfig, *, clean: bool
) -> tuple[Path, Checkpoint | None, list[str]]:
    """(run folder, its newest good checkpoint, notices) to resume ``resume_from`` (a run folder
    or one of its checkpoints) with ``cfg``; ``clean``: remove half-written checkpoints first."""
    run_dir = Path(resume_from)
    if (run_dir / "meta.json").exists():  # a checkpoint folder was given: use its run
        run_dir = run_dir.parent.parent
    diffs = config_differences(load_run_config(run_dir), cfg)
    if diffs:
        raise ConfigError("cannot resume with a different model: " + "; ".join(diffs))
    if clean:
        clean_stray(run_dir)
    start, damaged = latest_good(run_dir)
    return run_dir, start, [f"skipped a damaged checkpoint: {m}" for m in damaged]


def blend_with_init(state: dict, init: dict, share: float) -> dict:
    """``state`` with every float tensor moved ``share`` of the way to ``init`` (the run's
    step-0 weights); integer buffers (BatchNorm's batch counts) stay the trained ones.

    Weight-space ensembling (Wortsman et al. 2022, "Robust fine-tuning of zero-shot models"):
    halfway between a short self-supervised run and its own starting point, features kept the
    run's gain on the training split's tiles and held on another split's, where the trained
    weights alone fell below the untrained network (BENCHMARKS.md, issue 23).
    """
    out = {}
    for name, value in state.items():
        start = init.get(name)
        if (
            start is not None
            and value.is_floating_point()
            and start.shape == value.shape
            and start.dtype == value.dtype
        ):
            out[name] = torch.lerp(value, start.to(value.device), share)
        else:
            out[name] = value
    return out


def blend_note(share: float) -> str:
    """The run's advice on what its features are, in plain words."""
    return (
        f"Features use the trained weights blended {1 - share:.0%} with {share:.0%} of the "
        "untrained network's (init_blend): on tiles from another batch of slides this held "
        "where the trained weights alone fell below an untrained network."
    )
