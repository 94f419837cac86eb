"""What a training run says while it runs: plain frozen dataclasses, Python floats only.

The CLI prints them, the GUI forwards them through one Qt signal, tests collect them. One codec
(:func:`encode` / :func:`decode`) turns them into JSON-safe dicts and back: the metrics log, the
torchrun pipe and every reader of a finished run go through it. :func:`describe` is their one
human sentence (the CLI's messages, the Train page's log).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Preparing:
    """Before step 0: scanning the folder or decoding it into the cache (``total`` 0 = unknown)."""

    stage: str  # "scan" | "decode"
    done: int
    total: int


@dataclass(frozen=True, slots=True)
class RunStarted:
    run_dir: str
    device: str
    total_steps: int
    steps_per_epoch: int
    batch_size: int
    start_step: int  # > 0 when resumed
    num_images: int
    lr_schedule: tuple[float, ...]  # one value per step, so a GUI can plot it before step 0
    notices: tuple[str, ...] = ()  # e.g. "CUDA unavailable: training on CPU"


@dataclass(frozen=True, slots=True)
class StepLogged:
    step: int  # 0-based index of the step just taken
    epoch: int
    samples_seen: int
    loss: float
    lr: float
    images_per_s: float
    data_wait: float  # share of the step's wall time spent preparing the batch (0..1)
    eta_s: float
    extra: dict[str, float] = field(default_factory=dict)  # method metrics (e.g. momentum)


@dataclass(frozen=True, slots=True)
class MonitorLogged:
    """Collapse metrics (and kNN when the folder has labels) on the fixed probe set."""

    step: int
    std_sqrt_d: float  # std of L2-normalised embeddings x sqrt(d): ~1 healthy, ~0 collapsed
    rankme: float  # effective rank (Garrido et al. 2023)
    embed_dim: int
    knn_top1: float | None = None
    warning: str | None = None
    view_top1: float | None = None  # label-free quality: own-view retrieval on the probe set
    # the verdict (core.train.verdict): the probe under a colour/stain shift, beside random init
    shift_top1: float | None = None
    shift_ref: float | None = None  # the same measure at step 0 (random init)
    shift_noise: float | None = None  # two bootstrap standard errors of the paired gap
    verdict_sign: int | None = None  # 1 better than random init, -1 worse, 0 cannot tell
    verdict: str | None = None  # the same in plain words
    # the check folder (core.train.check): labelled images from other slides, answered by the
    # training folder's labelled images; when given, its verdict is the one above
    check_top1: float | None = None
    check_ref: float | None = None  # the same at step 0 (random init)
    check_noise: float | None = None
    check_n: int | None = None  # check images asked


@dataclass(frozen=True, slots=True)
class EpochEnded:
    epoch: int
    step: int
    mean_loss: float


@dataclass(frozen=True, slots=True)
class CheckpointSaved:
    step: int
    path: str


@dataclass(frozen=True, slots=True)
class RunStopped:
    """Stopped on request; the checkpoint at ``path`` resumes exactly ("" when stopped before
    the first step: resuming then starts from step 0)."""

    step: int
    path: str
    run_dir: str = ""


@dataclass(frozen=True, slots=True)
class RunFinished:
    step: int
    path: str
    final_loss: float
    recommended: str = ""  # the checkpoint the studio recommends ("" = the final one)
    advice: str = ""  # why, in one sentence, with the numbers


@dataclass(frozen=True, slots=True)
class RunFailed:
    """The run raised; ``last_checkpoint`` (if any) is intact and resumable."""

    step: int
    message: str
    last_checkpoint: str | None


@dataclass(frozen=True, slots=True)
class PlanRevised:
    """The plan changed mid-run: out of memory (smaller batch), the time budget, the folder."""

    step: int
    reason: str
    batch_size: int
    total_steps: int
    peak_lr: float
    lr_schedule: tuple[float, ...]


Event = (
    Preparing
    | RunStarted
    | StepLogged
    | MonitorLogged
    | EpochEnded
    | CheckpointSaved
    | RunStopped
    | RunFinished
    | RunFailed
    | PlanRevised
)

_TYPES: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        Preparing,
        RunStarted,
        StepLogged,
        MonitorLogged,
        EpochEnded,
        CheckpointSaved,
        RunStopped,
        RunFinished,
        RunFailed,
        PlanRevised,
    )
}


# the metrics log's name for each event's row (its "kind"), as written before the "type" field
KINDS: dict[type, str] = {
    StepLogged: "step",
    MonitorLogged: "monitor",
    EpochEnded: "epoch",
    CheckpointSaved: "checkpoint",
    RunStopped: "stopped",
    RunFinished: "finished",
    RunFailed: "failed",
    PlanRevised: "revision",
    RunStarted: "start",
}
_BY_KIND = {kind: cls for cls, kind in KINDS.items()}


def encode(ev: Event) -> dict:
    """The event as a JSON-safe dict whose "type" names its class (tuples become lists; floats
    stay floats, NaN included, as Python's json writes them). :func:`decode` is its inverse."""
    fields = {f.name: getattr(ev, f.name) for f in dataclasses.fields(ev)}
    for name, value in fields.items():
        if isinstance(value, tuple):
            fields[name] = list(value)
        elif isinstance(value, dict):
            fields[name] = dict(value)
    return {"type": type(ev).__name__, **fields}


def decode(data: dict) -> Event:
    """The event ``data`` describes: a dict from :func:`encode`, or a metrics-log row in the
    format written before the codec (named by "kind" only; fields it lacks take neutral
    defaults). Keys the event does not have are ignored. ValueError for anything else."""
    try:
        if "type" in data:
            cls = _TYPES[data["type"]]
        else:
            cls = _BY_KIND[data["kind"]]
            data = _legacy(cls, data)
        names = {f.name: f for f in dataclasses.fields(cls)}
        args = {k: v for k, v in data.items() if k in names}
        for name, value in args.items():
            if isinstance(value, list) and str(names[name].type).startswith("tuple"):
                args[name] = tuple(value)
        return cls(**args)
    except (KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"not an SSL Studio event: {str(data)[:80]!r}") from e


def _legacy(cls: type, row: dict) -> dict:
    """Fill what an old metrics row lacks so it decodes (the log wrote some rows by hand)."""
    nan = math.nan
    if cls is RunStarted:
        plan = row.get("plan") or {}
        defaults = {
            "run_dir": "",
            "start_step": row.get("step", 0),
            "steps_per_epoch": plan.get("steps_per_epoch", 0),
            "batch_size": plan.get("batch_size", 0),
            "num_images": plan.get("num_images", 0),
            "lr_schedule": (),
        }
    elif cls is PlanRevised:
        defaults = {"reason": "", "batch_size": 0, "total_steps": 0, "peak_lr": nan}
        defaults["lr_schedule"] = ()
    elif cls is RunFinished:
        defaults = {"path": row.get("recommended", ""), "final_loss": nan}
    elif cls is RunFailed:
        defaults = {"message": "", "last_checkpoint": None}
    elif cls is RunStopped:
        defaults = {"path": ""}
    else:
        defaults = {}
    return {**defaults, **row}


def to_json(ev: Event) -> str:
    """:func:`encode` as one line of JSON: how a run in another process (torchrun) reports to
    the window. :func:`from_json` is its inverse."""
    return json.dumps(encode(ev), allow_nan=True)


def from_json(text: str) -> Event:
    """The event a :func:`to_json` line describes. ValueError for anything else."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"not an SSL Studio event: {text[:80]!r}") from e
    if not isinstance(data, dict):
        raise ValueError(f"not an SSL Studio event: {text[:80]!r}")
    return decode(data)


def describe(ev: Event) -> str | None:
    """What ``ev`` says to a person, in plain text (lines joined by newlines), or None for the
    events a display shows as a gauge instead of a sentence (progress and single steps)."""
    if isinstance(ev, RunStarted):
        verb = f"resumed at step {ev.start_step}" if ev.start_step else "started"
        return "\n".join(
            [
                f"run {verb}: {_count(ev.num_images, 'image')}, batch {ev.batch_size:,}, "
                f"{_count(ev.total_steps, 'step')} on {ev.device}; folder {ev.run_dir}",
                *(f"note: {n}" for n in ev.notices),
            ]
        )
    if isinstance(ev, MonitorLogged):
        knn = f", kNN top-1 {ev.knn_top1:.1%}" if ev.knn_top1 is not None else ""
        knn += f", own-view retrieval {ev.view_top1:.1%}" if ev.view_top1 is not None else ""
        text = (
            f"health at step {ev.step}: std×√d {ev.std_sqrt_d:.3f}, "
            f"RankMe {ev.rankme:.1f}/{ev.embed_dim}{knn}"
        )
        text += f"\nWARNING at step {ev.step}: {ev.warning}" if ev.warning else ""
        return text + (f"\nstep {ev.step}: {ev.verdict}" if ev.verdict else "")
    if isinstance(ev, EpochEnded):
        return f"epoch {ev.epoch + 1} done: mean loss {ev.mean_loss:.4f}"
    if isinstance(ev, CheckpointSaved):
        return f"checkpoint at step {ev.step}: {ev.path}"
    if isinstance(ev, PlanRevised):
        return (
            f"plan revised at step {ev.step} ({ev.reason}): batch {ev.batch_size}, "
            f"{_count(ev.total_steps, 'step')}, peak learning rate {ev.peak_lr:.3g}"
        )
    if isinstance(ev, RunStopped):
        if ev.path:
            return f"stopped at step {ev.step}; checkpoint {ev.path}: resuming continues from here"
        if ev.run_dir:
            return "stopped before the first step; resuming starts this run again from step 0"
        return "stopped before the first step; nothing to resume."
    if isinstance(ev, RunFinished):
        # a finished run resumed takes no step: it has no loss to report, not "nan"
        loss = (
            "already finished" if math.isnan(ev.final_loss) else f"final loss {ev.final_loss:.4f}"
        )
        text = f"finished {_count(ev.step, 'step')}, {loss}; weights in {ev.path}"
        return text + (f"\nrecommended: {ev.recommended}: {ev.advice}" if ev.advice else "")
    if isinstance(ev, RunFailed):
        last = f" (last good checkpoint: {ev.last_checkpoint})" if ev.last_checkpoint else ""
        return f"FAILED at step {ev.step}: {ev.message}{last}"
    return None


def _count(n: int, noun: str) -> str:
    """'1 image', '3,619 images'."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"
