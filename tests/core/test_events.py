"""The one event codec (encode/decode) and the one sentence per event (describe)."""

from __future__ import annotations

import json
import math

import pytest

from sslstudio.core.events import (
    CheckpointSaved,
    EpochEnded,
    MonitorLogged,
    PlanRevised,
    Preparing,
    RunFailed,
    RunFinished,
    RunStarted,
    RunStopped,
    StepLogged,
    decode,
    describe,
    encode,
    from_json,
    to_json,
)
from sslstudio.core.train.runs import read_events
from sslstudio.core.train.trainer import train
from tests.shapes import tiny_config

ONE_OF_EACH = [
    Preparing(stage="decode", done=5, total=10),
    RunStarted(
        run_dir="/runs/r",
        device="cpu (1 threads)",
        total_steps=6,
        steps_per_epoch=3,
        batch_size=8,
        start_step=0,
        num_images=24,
        lr_schedule=(0.1, 0.2, 0.3),
        notices=("CUDA unavailable: training on CPU",),
    ),
    StepLogged(
        step=2,
        epoch=0,
        samples_seen=24,
        loss=3.5,
        lr=0.2,
        images_per_s=120.0,
        data_wait=0.25,
        eta_s=9.0,
        extra={"momentum": 0.99},
    ),
    MonitorLogged(step=3, std_sqrt_d=0.8, rankme=12.5, embed_dim=128, knn_top1=0.5),
    MonitorLogged(step=4, std_sqrt_d=0.01, rankme=1.0, embed_dim=128, warning="collapsed"),
    EpochEnded(epoch=0, step=2, mean_loss=3.25),
    CheckpointSaved(step=3, path="/runs/r/checkpoints/step_0000003"),
    PlanRevised(
        step=4,
        reason="out of memory at batch 8",
        batch_size=4,
        total_steps=9,
        peak_lr=0.05,
        lr_schedule=(0.05, 0.01),
    ),
    RunStopped(step=4, path="/runs/r/checkpoints/step_0000004", run_dir="/runs/r"),
    RunFinished(step=6, path="/runs/r/checkpoints/final", final_loss=3.0, advice="why"),
    RunFailed(step=5, message="DivergedError: loss is nan", last_checkpoint=None),
]


@pytest.mark.parametrize("ev", ONE_OF_EACH, ids=lambda e: type(e).__name__)
def test_encode_is_plain_json_and_decode_gives_the_event_back(ev):
    data = encode(ev)
    assert data["type"] == type(ev).__name__
    again = decode(json.loads(json.dumps(data, allow_nan=False)))  # strict JSON survives
    assert again == ev  # tuples come back as tuples: (1,) != [1]
    assert from_json(to_json(ev)) == ev


def test_nan_survives_the_codec():
    ev = EpochEnded(epoch=0, step=0, mean_loss=math.nan)
    assert math.isnan(from_json(to_json(ev)).mean_loss)


@pytest.mark.parametrize(
    "data",
    [
        {"type": "Nope", "step": 1},
        {"type": "StepLogged", "step": 1},  # fields missing
        {"kind": "banana", "step": 1},
        {"step": 1},
        ["not", "a", "dict"],
    ],
)
def test_decode_refuses_what_is_not_an_event(data):
    with pytest.raises(ValueError, match="not an SSL Studio event"):
        decode(data)


# Rows as the trainer wrote metrics.jsonl before the codec (named by "kind" only), and a line
# cut by a kill.
TODAYS_ROWS = [
    {
        "kind": "start",
        "step": 0,
        "total_steps": 6,
        "device": "cpu (1 threads)",
        "plan": {
            "batch_size": 8,
            "steps_per_epoch": 3,
            "total_steps": 6,
            "num_images": 24,
            "peak_lr": 0.1,
            "warmup_steps": 0,
            "revisions": [],
        },
        "notices": [],
    },
    {
        "kind": "monitor",
        "step": 0,
        "std_sqrt_d": 0.9,
        "rankme": 20.0,
        "embed_dim": 128,
        "knn_top1": 0.5,
        "warning": None,
        "view_top1": 0.25,
    },
    {
        "kind": "step",
        "step": 0,
        "epoch": 0,
        "samples_seen": 8,
        "loss": 4.0,
        "lr": 0.1,
        "images_per_s": 50.0,
        "data_wait": 0.5,
        "eta_s": 3.0,
        "extra": {},
    },
    {
        "kind": "step",
        "step": 1,
        "epoch": 0,
        "samples_seen": 16,
        "loss": 3.5,
        "lr": 0.1,
        "images_per_s": 60.0,
        "data_wait": 0.4,
        "eta_s": 2.0,
        "extra": {"momentum": 0.99},
    },
    {
        "kind": "revision",
        "step": 2,
        "at_step": 2,
        "reason": "time budget",
        "num_images": 24,
        "batch_size": 8,
        "total_steps": 4,
        "lr_scale": 1.0,
    },
    {"kind": "checkpoint", "step": 2, "path": "/r/checkpoints/step_0000002"},
    {"kind": "epoch", "epoch": 0, "step": 2, "mean_loss": 3.6},
    {"kind": "stopped", "step": 3},
    {
        "kind": "finished",
        "step": 4,
        "recommended": "/r/checkpoints/best",
        "advice": "step 2 scores best",
        "seconds": 12.5,
    },
    {"kind": "failed", "step": 4, "message": "disk full"},
]


def test_a_metrics_log_in_todays_format_reads_as_events(tmp_path):
    lines = [json.dumps(r) for r in TODAYS_ROWS] + ['{"kind": "step", "st']
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    events = read_events(tmp_path)
    assert [type(e).__name__ for e in events] == [
        "RunStarted",
        "MonitorLogged",
        "StepLogged",
        "StepLogged",
        "PlanRevised",
        "CheckpointSaved",
        "EpochEnded",
        "RunStopped",
        "RunFinished",
        "RunFailed",
    ]  # the line cut by a kill is skipped
    start, monitor, step0, step1, rev, saved, epoch, stopped, finished, failed = events
    assert (start.total_steps, start.batch_size, start.steps_per_epoch) == (6, 8, 3)
    assert start.device == "cpu (1 threads)" and start.start_step == 0
    assert monitor == MonitorLogged(0, 0.9, 20.0, 128, knn_top1=0.5, view_top1=0.25)
    assert step0.loss == 4.0 and step1.extra == {"momentum": 0.99}
    assert (rev.step, rev.reason, rev.batch_size, rev.total_steps) == (2, "time budget", 8, 4)
    assert saved == CheckpointSaved(2, "/r/checkpoints/step_0000002")
    assert epoch == EpochEnded(0, 2, 3.6)
    assert stopped == RunStopped(3, "")
    assert finished.recommended == "/r/checkpoints/best" and finished.advice == "step 2 scores best"
    assert failed == RunFailed(4, "disk full", None)


def test_the_trainer_writes_its_log_through_the_codec(tiny_folder, tmp_path):
    run = tmp_path / "run"
    events = list(train(tiny_config(tiny_folder, run, monitor_every=3)))
    logged = read_events(run)
    for kind in (StepLogged, MonitorLogged, EpochEnded, RunFinished):
        yielded = [e for e in events if isinstance(e, kind)]
        assert yielded and [e for e in logged if isinstance(e, kind)] == yielded
    saved = [e for e in events if isinstance(e, CheckpointSaved)]
    assert set(saved) <= set(e for e in logged if isinstance(e, CheckpointSaved))
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if r["kind"] == "step"]
    assert steps and all(r["type"] == "StepLogged" for r in steps)  # old readers still work


def test_describe_says_something_for_each_event_a_person_reads():
    said = {type(e).__name__: describe(e) for e in ONE_OF_EACH}
    assert said["Preparing"] is None and said["StepLogged"] is None  # gauges, not sentences
    assert said["RunStarted"] == (
        "run started: 24 images, batch 8, 6 steps on cpu (1 threads); folder /runs/r\n"
        "note: CUDA unavailable: training on CPU"
    )
    assert said["EpochEnded"] == "epoch 1 done: mean loss 3.2500"
    assert "WARNING at step 4: collapsed" in describe(ONE_OF_EACH[4])
    assert "kNN top-1 50.0%" in describe(ONE_OF_EACH[3]) and "WARNING" not in describe(
        ONE_OF_EACH[3]
    )
    assert said["RunStopped"].startswith("stopped at step 4; checkpoint /runs/r/")
    assert said["RunFailed"] == "FAILED at step 5: DivergedError: loss is nan"
    assert describe(RunStopped(0, "", "/runs/r")).endswith("again from step 0")
    assert describe(RunStopped(0, "", "")).endswith("nothing to resume.")
