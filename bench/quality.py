"""Representation quality for a wall-clock budget: kNN top-1 of trained vs random-init features.

The run is sized to the budget before it starts (a short measured warm-up gives seconds per
step, the step count follows), so the cosine schedule ends at the deadline instead of being
cut. Evaluation is the standard weighted kNN (k=200, τ=0.1, cosine; train split as memory,
val split as queries; for H&E also crc-he-shifted) on the same network at step 0 and at the
end, beside the colour-statistics baseline (bench/protocol.py).

    python bench/quality.py --data ../shared/data/cifar10-subset --size 32 --minutes 20
    python bench/quality.py --data ../shared/data/crc-he-subset --size 64 --preset histopathology
    --minutes 20
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import protocol, record  # noqa: E402
from bench.throughput import limit_block  # noqa: E402
from sslstudio.config import OptimConfig, RunConfig  # noqa: E402
from sslstudio.core.events import RunFinished, RunStarted, StepLogged  # noqa: E402
from sslstudio.core.explore.embed import load_method, random_init_method  # noqa: E402
from sslstudio.core.train.trainer import train  # noqa: E402
from sslstudio.core.transforms.presets import preset, with_jitter_strength  # noqa: E402


def seconds_per_step(cfg: RunConfig, steps: int = 3) -> float:
    """Model-only time per step (the throughput benchmark's limit) plus 5 % for the data
    pipeline."""
    return cfg.batch_size / limit_block(cfg, steps) * 1.05


def measured_mean_cost(cfg: RunConfig) -> float:
    """Average step time over a progressive run, relative to a full-size step, each size timed."""
    import numpy as np

    from sslstudio.core.train.resizing import mean_cost, size_at
    from sslstudio.core.train.steptime import time_steps

    sizes = np.unique(size_at(np.linspace(0.0, 1.0, 1001), cfg.progressive_from, cfg.image_size))
    times = {
        int(s): time_steps(
            dataclasses.replace(cfg, image_size=int(s), progressive_from=0), 10_000, steps=5
        ).seconds_per_step
        for s in sizes
    }
    print("seconds per step by size:", {s: round(t, 3) for s, t in times.items()})
    return mean_cost(cfg.progressive_from, cfg.image_size, times)  # every size timed: exact


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", required=True, help="folder with train/ and val/ class subfolders")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--preset", default="natural")
    ap.add_argument("--minutes", type=float, default=20.0, help="training wall-clock budget")
    ap.add_argument("--backbone", default="resnet18")
    ap.add_argument("--method", default="simclr")
    ap.add_argument(
        "--crop-min", type=float, default=None, help="smallest crop share (default: the preset's)"
    )
    ap.add_argument(
        "--jitter", type=float, default=None, help="scale the preset's colour-jitter strengths"
    )
    ap.add_argument("--small-stem", default="auto", choices=("auto", "on", "off"))
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--optimizer", default="sgd")
    ap.add_argument("--lr", type=float, default=0.06)
    ap.add_argument("--wd", type=float, default=5e-4)
    ap.add_argument("--temperature", type=float, default=None)
    ap.add_argument("--warmup-epochs", type=float, default=0.5)
    ap.add_argument(
        "--progressive-from",
        type=int,
        default=0,
        help="progressive resizing from this size; --steps is then the full-size count, scaled "
        "by the measured cost of the smaller steps so the run takes the same time",
    )
    ap.add_argument(
        "--mean-cost",
        type=float,
        default=0.0,
        help="with --progressive-from: the mean step cost from an earlier quiet measurement (skips "
        "timing)",
    )
    ap.add_argument("--json", default=None)
    ap.add_argument(
        "--steps",
        type=int,
        default=0,
        help="fix the step count instead of measuring (e.g. from an earlier uncontended "
        "measurement)",
    )
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = all)")
    ap.add_argument(
        "--seed", type=int, default=0, help="the run's seed (data order, views, initialisation)"
    )
    args = ap.parse_args()
    data = Path(args.data)
    opts = {} if args.temperature is None else {"temperature": args.temperature}
    augment = preset(args.preset, args.size)
    if args.crop_min is not None:
        augment = dataclasses.replace(augment, crop_scale_min=args.crop_min)
    if args.jitter is not None:
        augment = with_jitter_strength(augment, args.jitter)
    cfg = RunConfig(
        data_root=str(data / "train"),
        method=args.method,
        backbone=args.backbone,
        small_stem=args.small_stem,
        image_size=args.size,
        batch_size=args.batch,
        epochs=10_000,
        preset="custom",
        augment=augment,
        optim=OptimConfig(
            optimizer=args.optimizer,
            lr=args.lr,
            weight_decay=args.wd,
            warmup_epochs=args.warmup_epochs,
        ),
        method_options=opts,
        monitor_every=0,
        checkpoint_every=10**9,
        out=tempfile.mkdtemp(prefix="sslstudio-q-"),
        threads=args.threads,
        progressive_from=args.progressive_from,
        seed=args.seed,
    )
    if args.threads:
        torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    if args.steps:
        steps = args.steps
        print(f"{steps} steps (fixed by --steps)")
        if args.progressive_from:
            mean = args.mean_cost or measured_mean_cost(cfg)
            steps = int(round(args.steps / mean))
            print(
                f"progressive from {args.progressive_from} px: mean step cost {mean:.3f} of a full "
                "one "
                f"(measured) -> {steps} steps in the same time"
            )
    else:
        sps = seconds_per_step(cfg)
        budget = args.minutes * 60 - (time.perf_counter() - t_start)
        steps = max(1, int(budget / sps))
        print(f"{sps:.2f} s/step measured -> {steps} steps for {args.minutes} min")
    cfg = dataclasses.replace(cfg, max_steps=steps)
    losses = []
    for ev in train(cfg):
        if isinstance(ev, RunStarted):
            print(
                f"{ev.num_images} images, {ev.steps_per_epoch} steps/epoch, {ev.total_steps} steps "
                f"on {ev.device}"
            )
        elif isinstance(ev, StepLogged):
            losses.append(ev.loss)
            if ev.step % 50 == 0:
                print(f"step {ev.step} loss {ev.loss:.3f} {ev.images_per_s:.0f} img/s", flush=True)
        elif isinstance(ev, RunFinished):
            run = Path(ev.path).parent.parent
    train_s = time.perf_counter() - t_start
    method, _, _ = load_method(run)
    scores = protocol.report(method, random_init_method(cfg), data, args.size)
    trained, random = scores["trained"]["val"], scores["random_init"]["val"]
    epochs = steps * args.batch / len(list((data / "train").rglob("*.*")))
    print(
        f"\n{'data':<16} {'size':>4} {'min':>5} {'epochs':>6} {'random kNN':>10} "
        f"{'trained kNN':>11} {'gain':>7}"
    )
    print(
        f"{data.name:<16} {args.size:>4} {train_s / 60:>5.1f} {epochs:>6.2f} {random:>10.4f} "
        f"{trained:>11.4f} {trained - random:>+7.4f}"
    )
    print(protocol.line(scores))
    result = {
        "data": data.name,
        **scores,  # every query set (val, and crc-he-shifted for H&E) and the colour baseline
        "size": args.size,
        "train_minutes": train_s / 60,
        "steps": steps,
        "epochs": epochs,
        "random_init_knn": random,
        "trained_knn": trained,
        "gain": trained - random,
        "config": cfg.to_dict(),
        "first_loss": losses[0],
        "last_loss": losses[-1],
    }
    out = Path(args.json or ROOT / "bench" / "results" / f"quality-{data.name}-{args.size}.json")
    record.write(out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
