"""The budget planner: rules for the device and budget, the user's own choices kept, a step
count that leaves room for start-up, probes and the last checkpoint."""

import json
from pathlib import Path

import pytest

from sslstudio.config import OptimConfig, RunConfig
from sslstudio.core.train.budget import measure_seconds_per_step, plan_budget
from sslstudio.core.transforms.presets import preset

HERE = Path(__file__).parent  # any existing folder: the planner never reads it


def test_a_ten_minute_cpu_plan(tmp_path):
    plan = plan_budget(
        RunConfig(data_root=str(HERE), device="cpu", preset="histopathology"),
        600,
        2500,
        seconds_per_step=0.5,
    )
    c = plan.config
    assert (c.method, c.backbone, c.image_size, c.batch_size, c.small_stem) == (
        "simclr",
        "resnet18",
        32,
        128,
        "off",
    )
    assert c.progressive_from == 0  # one size throughout: the ramp lost at the 10-minute budget
    assert c.optim.optimizer == "adamw" and c.optim.lr == pytest.approx(2e-3)  # the H&E rule
    assert (
        c.augment.crop_scale_min == pytest.approx(0.25) and c.augment.hed_p > 0
    )  # the domain's preset, milder crops
    he = preset("histopathology", 32)  # H&E: stronger colour and stain jitter, greyscale views
    assert (c.augment.brightness, c.augment.hue) == pytest.approx((he.brightness * 2, he.hue * 2))
    assert (c.augment.hed_sigma, c.augment.grey_p) == pytest.approx((0.2, 0.2))
    assert he.hed_sigma < 0.2 and he.grey_p == 0  # the preset itself is unchanged
    assert c.init_blend == pytest.approx(0.5)  # H&E features blended with the start
    assert any("blended 50% trained" in why for why in plan.choices)
    natural = plan_budget(
        RunConfig(data_root=str(HERE), device="cpu"), 600, 2500, seconds_per_step=0.5
    ).config
    assert (natural.image_size, natural.progressive_from) == (32, 0)  # photos: 32 px throughout
    assert natural.augment.brightness == pytest.approx(
        preset("natural", 32).brightness
    )  # photos keep theirs
    assert natural.init_blend == 0  # photos have no stain shift: the blend cost 2 points there
    assert 0 < c.time_budget_s <= 600 and c.max_steps == plan.steps
    assert 900 < plan.steps < 600 / 0.5  # start-up, probes and the final save are left room
    spe = 2500 // 128
    assert c.optim.warmup_epochs * spe == pytest.approx(0.05 * plan.steps, rel=0.02)
    assert c.monitor_every * 12 <= plan.steps and c.checkpoint_every * 5 <= plan.steps
    assert "Plan for 10 min" in plan.summary() and len(plan.choices) >= 5
    saved = json.loads(plan.save(tmp_path).read_text())
    assert saved["steps"] == plan.steps and saved["config"]["time_budget_s"] == c.time_budget_s


def test_the_users_choices_are_kept():
    mine = RunConfig(
        data_root=str(HERE),
        device="cpu",
        image_size=48,
        optim=OptimConfig(optimizer="sgd", lr=0.1),
        method="byol",
    )
    plan = plan_budget(
        mine,
        3600,
        5000,
        keep=frozenset({"image_size", "optim", "method", "method_options"}),
        seconds_per_step=1.0,
    )
    c = plan.config
    assert (c.image_size, c.optim.optimizer, c.optim.lr, c.method, c.method_options) == (
        48,
        "sgd",
        0.1,
        "byol",
        {},
    )
    assert any("kept as you set them" in line for line in plan.choices)
    # no reason for a choice the planner did not make (it said "32 px throughout" at 64 px)
    assert not any(" px throughout" in line for line in plan.choices)
    assert not any(line.startswith(("AdamW", "SimCLR")) for line in plan.choices)
    assert any(line.startswith("batch 128") for line in plan.choices)  # its own choices stay


def test_a_small_folder_and_a_too_short_budget():
    plan = plan_budget(RunConfig(data_root=str(HERE), device="cpu"), 120, 40, seconds_per_step=0.2)
    assert plan.config.batch_size == 40 and any(
        "the folder has 40 images" in c for c in plan.choices
    )
    assert plan.config.optim.warmup_epochs <= 100
    with pytest.raises(ValueError, match="too short"):
        plan_budget(RunConfig(data_root=str(HERE), device="cpu"), 10, 100, seconds_per_step=0.2)
    with pytest.raises(ValueError, match="at least 2"):
        plan_budget(RunConfig(data_root=str(HERE), device="cpu"), 600, 1, seconds_per_step=0.2)


def test_the_warm_up_times_real_steps():
    cfg = RunConfig(
        data_root=str(HERE),
        device="cpu",
        backbone="tiny_cnn",
        image_size=16,
        batch_size=8,
        threads=1,
    )
    assert 0 < measure_seconds_per_step(cfg, steps=2) < 5


def test_a_progressive_plan_times_both_ends_and_fits_more_steps(monkeypatch):
    from sslstudio.core.train import budget

    monkeypatch.setattr(
        budget, "measure_seconds_per_step", lambda cfg: {16: 0.25, 32: 0.5}.get(cfg.image_size, 1.0)
    )
    base = RunConfig(data_root=str(HERE), device="cpu")
    fixed = plan_budget(base, 600, 2500)
    ramp = plan_budget(
        RunConfig(data_root=str(HERE), device="cpu", progressive_from=16),
        600,
        2500,
        keep=frozenset({"progressive_from"}),
    )
    assert fixed.config.progressive_from == 0 and fixed.config.step_seconds == {"32": 0.5}
    assert ramp.config.progressive_from == 16 and ramp.config.step_seconds == {
        "16": 0.25,
        "32": 0.5,
    }
    mean = budget.mean_cost(16, 32, {16: 0.25, 32: 0.5})
    assert 0.5 < mean < 1 and ramp.steps == pytest.approx(fixed.steps / mean, rel=0.02)
    assert (
        "16→32 px" in ramp.summary() and "kept as you set them: progressive_from" in ramp.summary()
    )
    kept = plan_budget(
        RunConfig(data_root=str(HERE), device="cpu", image_size=96, progressive_from=48),
        600,
        2500,
        keep=frozenset({"image_size"}),
    )  # a size the user set, without a ramp they set: throughout
    assert (kept.config.image_size, kept.config.progressive_from) == (96, 0)
