"""What a training run says while it runs: plain frozen dataclasses, Python floats only.

The CLI prints them, the GUI forwards them through one Qt signal, tests collect them.
"""

from __future__ import annotations

import dataclasses
import json
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


def to_json(ev: Event) -> str:
    """One line of JSON naming the event's type: how a run in another process (torchrun)
    reports to the window. Plain data only; :func:`from_json` is its inverse."""
    fields = {f.name: getattr(ev, f.name) for f in dataclasses.fields(ev)}
    return json.dumps({"event": type(ev).__name__, **fields}, allow_nan=True)


def from_json(text: str) -> Event:
    """The event a :func:`to_json` line describes. ValueError for anything else."""
    try:
        data = json.loads(text)
        cls = _TYPES[data.pop("event")]
        for f in dataclasses.fields(cls):
            if str(f.type).startswith("tuple") and isinstance(data.get(f.name), list):
                data[f.name] = tuple(data[f.name])
        return cls(**data)
    except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as e:
        raise ValueError(f"not an SSL Studio event: {text[:80]!r}") from e
