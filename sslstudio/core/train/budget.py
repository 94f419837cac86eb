"""Budget mode: the best features for the time the user has.

``plan_budget(cfg, seconds, ...)`` turns "I have 10 minutes" into a complete run: method,
backbone, resolution, batch, optimiser and schedules, chosen by rules measured with
``bench/budget.py`` (see BENCHMARKS.md, "Budget mode"), and a step count from a short warm-up
of real steps on this device. The trainer's deadline keeps the run on time when the pace
drifts, re-laying the schedule so it ends rather than being cut. Every field the user set
explicitly is kept; the plan says which choices it made and why.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from sslstudio.config import OptimConfig, RunConfig, validate
from sslstudio.core.train.device import describe, pick_device
from sslstudio.core.train.resizing import mean_cost
from sslstudio.core.train.schedules import WARMUP_SHARE
from sslstudio.core.train.threads import plan_note
from sslstudio.core.transforms.presets import preset, with_jitter_strength

HOUR = 3600.0
PROBES = 12  # quality measurements per run: enough to pick a best checkpoint, ~2 % of the time
CHECKPOINTS = 5  # resumable points per run
SAVE_S = 1.0  # one checkpoint write, generously
START_S = 5.0  # scan, decode-cache check and model build before step 0 (measured: 1-4 s cached)


@dataclass(frozen=True)
class BudgetPlan:
    budget_s: float
    device: str
    config: RunConfig  # the run to start: time_budget_s and max_steps set
    seconds_per_step: float
    steps: int
    epochs: float
    choices: tuple[str, ...] = field(
        default_factory=tuple
    )  # one line per decision, with its reason

    def summary(self) -> str:
        c = self.config
        size = f"{c.progressive_from}→{c.image_size}" if c.progressive_from else str(c.image_size)
        head = (
            f"Plan for {_fmt(self.budget_s)} on {self.device}: {c.method} · {c.backbone} · {size} "
            "px · "
            f"batch {c.batch_size} · {c.optim.optimizer} lr {c.optim.lr:g} · {self.steps} steps "
            f"(~{self.epochs:.1f} epochs, {self.seconds_per_step:.2f} s/step measured)"
        )
        return "\n".join([head, *(f"  - {c}" for c in self.choices)])

    def to_dict(self) -> dict:
        return {
            "budget_s": self.budget_s,
            "device": self.device,
            "seconds_per_step": self.seconds_per_step,
            "steps": self.steps,
            "epochs": self.epochs,
            "choices": list(self.choices),
            "config": self.config.to_dict(),
        }

    def save(self, run_dir: str | Path) -> Path:
        path = Path(run_dir) / "budget.json"
        path.write_text(json.dumps(self.to_dict(), indent=2), encoding="utf-8")
        return path


# H&E colour rule (bench/stain_search.py, BENCHMARKS.md "Features that hold on new slides"): the
# preset's colour jitter doubled, HED stain jitter at Tellez's "strong" range, greyscale views.
# Weaker colour augmentation lets SimCLR key on slide colour: on tiles of another split it fell
# below an untrained network within 100 steps
HE_JITTER = 2.0  # brightness/contrast/saturation/hue scale on H&E (bench/quality.py --jitter)
HE_STAIN_SIGMA = 0.2
HE_GREY_P = 0.2
# weight-space blend with the run's step-0 weights on H&E (RunConfig.init_blend; BENCHMARKS.md
# "Features that hold on new slides"): 0.5 held +8 kNN points over random init on the other
# split in two recipes where the trained weights fell 6 below it; CIFAR lost 2 points with it
HE_INIT_BLEND = 0.5


def planned_size(budget_s: float, gpu: bool, native_side: int | None) -> int:
    """The image size a run of ``budget_s`` trains at: more epochs at a lower resolution beat
    fewer at a higher one on a short budget; never above the images' own (shorter) side."""
    if gpu:
        size = 224 if budget_s >= 4 * HOUR else 96 if budget_s >= HOUR else 64
    else:
        size = 64 if budget_s >= 4 * HOUR else 32
    return min(size, max(32, native_side)) if native_side else size


def size_reason(size: int, budget_s: float, gpu: bool, native_side: int | None) -> str:
    """One line on why ``planned_size`` chose ``size``, for the Data page and the CLI."""
    where = "a GPU" if gpu else "the CPU"
    if native_side and size >= native_side:
        return f"{size} px, the images' own size ({_fmt(budget_s)} on {where})"
    native = f"the images are {native_side:,} px, but " if native_side else ""
    return (
        f"{size} px: {native}a {_fmt(budget_s)} run on {where} learns more from more passes "
        "over the folder at a low resolution than from fewer at a high one"
    )


def rules(
    cfg: RunConfig, budget_s: float, device: str, native_side: int | None
) -> tuple[dict, list[str]]:
    """The planner's choices for this budget and device, as RunConfig field values + reasons."""
    choice, tagged = _rules(cfg, budget_s, device, native_side)
    return choice, [text for _, text in tagged]


def _size_why(size: int, gpu: bool, budget_s: float) -> str:
    if gpu:
        return (
            f"{size} px throughout: on a GPU with {_fmt(budget_s)}, more epochs at a lower "
            "resolution beat fewer at a higher one (GPU sizes not yet measured)"
        )
    if size > 32:
        return (
            f"{size} px throughout: {_fmt(budget_s)} on a CPU leaves time for many passes at "
            f"{size} px (long budgets not measured here; in 10 minutes 64 px tied with 32 px on "
            "both H&E query sets)"
        )
    return (
        f"{size} px throughout: on a CPU with {_fmt(budget_s)}, 64 px tied with 32 px on H&E "
        "tiles, on the training split and on another split (10 min, two seeds: 0.54 / 0.73 kNN "
        "against 0.53 / 0.73), so the cheaper size: 4x less to embed a folder; growing from 32 "
        "to 64 px lost on the other split (+2 points over its untrained network against +8); "
        "on CIFAR starting at 16 px lost 2"
    )


def _rules(
    cfg: RunConfig, budget_s: float, device: str, native_side: int | None
) -> tuple[dict, list[tuple[str, str]]]:
    """:func:`rules` with each reason tagged by the field it is for (a field the user set keeps
    their value, and the planner's reason for its own would mislead: ``plan_budget`` drops it)."""
    domain = cfg.preset if cfg.preset != "custom" else "natural"
    gpu = device != "cpu"
    why: list[tuple[str, str]] = []
    size = planned_size(budget_s, gpu, native_side)
    why.append(("image_size", _size_why(size, gpu, budget_s)))
    batch = 256 if gpu else 128
    batched = "fills the GPU" if gpu else "beat 64 in an equal-time CPU run"
    why.append(("batch_size", f"batch {batch}: {batched}"))
    aug = dataclasses.replace(preset(domain, size), crop_scale_min=0.25)
    why.append(
        (
            "augment",
            "crops of 25-100 % of the image: the 8 % crops of long schedules slow a short one down",
        )
    )
    if domain == "histopathology":
        aug = dataclasses.replace(
            with_jitter_strength(aug, HE_JITTER), hed_sigma=HE_STAIN_SIGMA, grey_p=HE_GREY_P
        )
        stained = (
            f"colour jitter at {HE_JITTER:g}x the preset's, stain jitter {HE_STAIN_SIGMA:g}, "
            f"greyscale {HE_GREY_P:.0%} of views: so the features carry tissue, not slide "
            "colour. On tiles from another split with shifted colours the preset's jitter (or a "
            "quarter of it) fell below an untrained network (0.48 vs 0.64 kNN); with this and "
            "the blend below, three 10-minute runs scored 0.72-0.75 there against 0.51-0.64 "
            "untrained, and 0.54 against 0.36-0.42 on the training split's own tiles"
        )
        why.append(("augment", stained))
    blend = HE_INIT_BLEND if domain == "histopathology" else 0.0
    if blend:
        blended = (
            f"features blended {1 - blend:.0%} trained with {blend:.0%} of the untrained "
            "network: on tiles from another split the trained weights fell below an untrained "
            "network (0.56-0.58 vs 0.64 kNN in three 10-minute runs) where the blend held above "
            "it (0.65-0.73 in five), at about no cost on the training split's own tiles (-3 to "
            "+1 points); on CIFAR, with no such shift, it cost 2 points, so only here"
        )
        why.append(("init_blend", blended))
    lr = 2e-3 if domain == "histopathology" else 4e-3
    optim = OptimConfig(
        optimizer="adamw", lr=lr, weight_decay=1e-4, warmup_epochs=0.5, min_lr_ratio=0.0
    )
    optimised = (
        f"AdamW, lr {lr:g} per 256 images, cosine to zero at the deadline: beat SGD by 1-11 kNN "
        "points in equal-time runs on both benchmark sets"
    )
    why.append(("optim", optimised))
    choice = {
        "method": "simclr",
        "method_options": {"temperature": 0.2},  # SimCLR's default; 0.5 was slower to start
        "backbone": "resnet18",
        "small_stem": "off",
        "image_size": size,
        "progressive_from": 0,
        "batch_size": batch,
        "preset": domain,
        "augment": aug,
        "optim": optim,
        "init_blend": blend,
    }
    why.insert(
        0,
        (
            "method",
            "SimCLR, temperature 0.2: first of the 16 methods in equal-time CPU runs on both "
            "benchmark sets, VICReg second (bench/methods.py)",
        ),
    )
    return choice, why


def measure_seconds_per_step(cfg: RunConfig, steps: int = 3) -> float:
    """Seconds per real training step (views made and model updated) on random images."""
    from sslstudio.core.train.steptime import time_steps

    return time_steps(cfg, cfg.batch_size, steps=steps).seconds_per_step


def plan_budget(
    cfg: RunConfig,
    budget_s: float,
    num_images: int,
    *,
    keep: frozenset[str] = frozenset(),
    native_side: int | None = None,
    seconds_per_step: float | None = None,
    started: float | None = None,
) -> BudgetPlan:
    """Plan ``cfg`` to finish within ``budget_s`` seconds on ``num_images`` images.

    Args:
        keep: RunConfig field names the user set explicitly; the rules leave them alone.
        seconds_per_step: skip the warm-up measurement (tests, or a known pace).
        started: ``time.perf_counter()`` when the user asked (time spent before planning counts).
    """
    if budget_s < 30:
        raise ValueError(f"a time budget of {budget_s:.0f} s is too short: give at least 30 s")
    t_plan = time.perf_counter() if started is None else started
    device, _ = pick_device(cfg.device)
    choice, tagged = _rules(cfg, budget_s, device.type, native_side)
    kept = sorted(k for k in choice if k in keep)
    why = [text for name, text in tagged if name not in keep]
    user_optim = cfg.optim
    cfg = dataclasses.replace(cfg, **{k: v for k, v in choice.items() if k not in keep})
    if "optim" in keep:  # the user's own optimiser settings, over the planned ones
        cfg = dataclasses.replace(cfg, optim=user_optim)
    if kept:
        why.append("kept as you set them: " + ", ".join(kept))
    batch = min(cfg.batch_size, num_images)
    if batch < 2:
        raise ValueError(f"training needs at least 2 usable images, found {num_images}")
    if batch < cfg.batch_size:
        why.append(f"batch {batch}: the folder has {num_images} images")
    cfg = dataclasses.replace(cfg, batch_size=batch)
    sps = seconds_per_step if seconds_per_step is not None else measure_seconds_per_step(cfg)
    timed = {cfg.image_size: sps}
    if cfg.progressive_from and seconds_per_step is None:  # the other end of the ramp
        small = dataclasses.replace(cfg, image_size=cfg.progressive_from, progressive_from=0)
        timed[cfg.progressive_from] = measure_seconds_per_step(small)
    spent = time.perf_counter() - t_plan
    # the run's own clock starts after planning: give it what planning did not use
    run_s = budget_s - spent
    probe_s = 2 * sps  # a probe embeds ~3 x 512 images forward-only: about two steps' work
    usable = run_s - START_S - 2 * probe_s - 2 * sps  # start, the final probe and save
    mean = mean_cost(cfg.progressive_from, cfg.image_size, timed)  # relative to a full-size step
    steps = max(10, int((usable - PROBES * probe_s - CHECKPOINTS * SAVE_S) / (sps * mean)))
    spe = max(1, num_images // batch)
    cfg = dataclasses.replace(
        cfg,
        time_budget_s=round(run_s, 1),
        epochs=max(1, -(-steps // spe)),
        max_steps=steps,
        monitor_every=max(10, steps // PROBES),
        checkpoint_every=max(10, steps // CHECKPOINTS),
        probe_size=max(cfg.probe_size, min(512, num_images)),
        step_seconds={str(k): round(v, 4) for k, v in sorted(timed.items())},
    )
    if "optim" not in keep:  # warm up for 5 % of the run, however few images an epoch holds
        warmup = min(100.0, round(WARMUP_SHARE * steps / spe, 3))
        cfg = dataclasses.replace(cfg, optim=dataclasses.replace(cfg.optim, warmup_epochs=warmup))
    validate(cfg)
    why.append(
        f"{steps} steps: {_fmt(run_s)} at {sps:.2f} s/step measured here"
        + (f" at full size (the smaller steps: {mean:.0%} of that on average)" if mean < 1 else "")
        + ", less start-up, "
        f"{PROBES} quality probes and the final checkpoint; the deadline re-plans if the pace "
        "changes"
    )
    why += [note] if (note := plan_note(cfg, device)) else []
    return BudgetPlan(
        budget_s=budget_s,
        device=describe(device),
        config=cfg,
        seconds_per_step=sps,
        steps=steps,
        epochs=steps * batch / num_images,
        choices=tuple(why),
    )


def _fmt(seconds: float) -> str:
    if seconds >= HOUR:
        return f"{seconds / HOUR:.1f} h"
    return f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:.0f} s"
