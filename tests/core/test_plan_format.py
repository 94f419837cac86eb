"""The plan as stored in checkpoints: a typed Plan written as the JSON dict it used to be."""

import dataclasses
import json

import numpy as np
import pytest

from sslstudio.core.train.plan import (
    Plan,
    Revision,
    lr_schedule,
    make_plan,
    position,
    resumed_plan,
    revise,
)
from tests.shapes import tiny_config

# meta.json's "plan" as written before the plan was typed (an out-of-memory halving at step 17,
# then the time budget at step 30), and what that version computed from it
OLD_FORMAT = {
    "batch_size": 4,
    "steps_per_epoch": 25,
    "total_steps": 100,
    "num_images": 100,
    "peak_lr": 3.125e-05,
    "warmup_steps": 6,
    "revisions": [
        {
            "at_step": 17,
            "reason": "out of memory at batch 8",
            "num_images": 100,
            "batch_size": 4,
            "total_steps": 223,
            "lr_scale": 0.5,
            "epoch_base": 2,
        },
        {
            "at_step": 30,
            "reason": "time budget",
            "num_images": 100,
            "batch_size": 4,
            "total_steps": 100,
            "lr_scale": 1.0,
        },
    ],
    "initial_total_steps": 120,
    "initial_peak_lr": 6.25e-05,
}
OLD_LR = {0: 0.0, 17: 3.052501197938524e-05, 30: 2.944199121756295e-05, 60: 1.4538319977867672e-05}


def test_an_old_format_plan_reads_back_to_the_same_numbers_and_writes_the_same_json(tmp_path):
    cfg = tiny_config(tmp_path, epochs=10)  # 100 images, batch 8: 12 steps/epoch, 120 steps
    plan = Plan.from_dict(json.loads(json.dumps(OLD_FORMAT)))
    assert plan.revisions[0].epoch_base == 2 and plan.revisions[1].epoch_base is None
    assert position(plan, 40) == (2, 73)
    sched = lr_schedule(plan, cfg)
    assert len(sched) == 100
    for step, lr in OLD_LR.items():
        assert sched[step] == pytest.approx(lr, rel=1e-12, abs=1e-15)
    assert plan.to_dict() == OLD_FORMAT  # an older version resumes from what this one writes
    made = make_plan(cfg, 100)
    rebuilt = revise(
        revise(made, 17, "out of memory at batch 8", batch_size=4),
        30,
        "time budget",
        total_steps=100,
    )
    assert rebuilt == plan


def test_a_new_plan_is_written_without_revision_keys_and_is_frozen(tmp_path):
    plan = make_plan(tiny_config(tmp_path), 100)
    row = plan.to_dict()
    assert (
        row["revisions"] == [] and "initial_total_steps" not in row and "initial_peak_lr" not in row
    )
    assert Plan.from_dict(row) == plan and plan.first_total_steps == plan.total_steps
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.batch_size = 2  # type: ignore[misc]
    # a key written by a newer version is left out rather than refused
    assert Plan.from_dict({**row, "from_the_future": 1}) == plan


def test_a_revision_missing_its_optional_keys_follows_the_schedule_it_revises(tmp_path):
    cfg = tiny_config(tmp_path, epochs=10)
    row = {
        **make_plan(cfg, 100).to_dict(),
        "revisions": [{"at_step": 5, "reason": "x", "num_images": 100, "batch_size": 8}],
    }
    plan = Plan.from_dict(row)
    assert plan.revisions == (Revision(at_step=5, reason="x", num_images=100, batch_size=8),)
    np.testing.assert_array_equal(lr_schedule(plan, cfg), lr_schedule(make_plan(cfg, 100), cfg))


def test_resuming_on_a_changed_folder_revises_the_saved_plan(tmp_path):
    saved = make_plan(tiny_config(tmp_path, epochs=10), 100).to_dict()
    plan, old, notice = resumed_plan(saved, 24, True, 100)
    assert plan is old and notice == "" and plan == Plan.from_dict(saved)
    plan, old, notice = resumed_plan(saved, 24, True, 80)
    assert old.num_images == 100 and plan.num_images == 80 and "100 -> 80 usable images" in notice
    assert plan.revisions[-1].reason == "folder changed" and plan.total_steps == old.total_steps
    assert position(plan, 24) == (3, 30)  # a fresh epoch from the step it resumes at
    plan, _, notice = resumed_plan(saved, 24, False, 100)  # same count, other images
    assert notice and plan.revisions[-1].reason == "folder changed"
