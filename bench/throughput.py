"""Training throughput of the full pipeline versus the model-only limit.

Pipeline: the real trainer (cached decode -> batched per-image augmentation -> SimCLR step),
timed between consecutive StepLogged events as the consumer sees them. Limit: the same
method's forward + backward + optimizer step on ready-made tensors of the same shape.
The two are interleaved in one process (pipeline block, limit block, ...) so machine noise
hits both alike; the table reports medians over the repeats and their ratio.

    python bench/throughput.py                       # 32 px (CIFAR subset) and 64 px (CRC subset)
    python bench/throughput.py --repeats 7 --steps 4 --json bench/results/throughput.json
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import record  # noqa: E402
from sslstudio.config import RunConfig  # noqa: E402
from sslstudio.core.events import RunStarted, StepLogged  # noqa: E402
from sslstudio.core.methods import Batch, build_method  # noqa: E402
from sslstudio.core.train.optimizers import build_optimizer  # noqa: E402
from sslstudio.core.train.trainer import train  # noqa: E402
from sslstudio.core.transforms.presets import preset  # noqa: E402

DATA = ROOT.parent / "shared" / "data"


def limit_block(cfg: RunConfig, steps: int) -> float:
    """Images/s of the model alone on tensors that already exist."""
    torch.manual_seed(0)
    method = build_method(cfg)
    opt = build_optimizer(method, cfg.optim, 0.01)
    views = [torch.randn(cfg.batch_size, 3, cfg.image_size, cfg.image_size) for _ in range(2)]
    method.train()
    loss, _ = method.training_step(Batch(views))  # warm-up (allocator, kernels)
    loss.backward()
    t0 = time.perf_counter()
    for _ in range(steps):
        loss, _ = method.training_step(Batch(views))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss.item()
    return steps * cfg.batch_size / (time.perf_counter() - t0)


def measure(
    folder: Path,
    size: int,
    preset_name: str,
    batch: int,
    steps: int,
    repeats: int,
    backbone: str,
    small_stem: str,
) -> dict:
    cfg = RunConfig(
        data_root=str(folder),
        backbone=backbone,
        small_stem=small_stem,
        image_size=size,
        batch_size=batch,
        epochs=1000,
        preset=preset_name,
        augment=preset(preset_name, size),
        monitor_every=0,
        checkpoint_every=10**9,
        out=tempfile.mkdtemp(prefix="sslstudio-bench-"),
    )
    gen = train(cfg)
    for ev in gen:  # scan + cache build happen here, before the clock starts
        if isinstance(ev, RunStarted):
            break
    next(gen)  # first step: warm-up
    pipe, lim = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        n = 0
        for ev in gen:
            if isinstance(ev, StepLogged):
                n += 1
                if n == steps:
                    break
        pipe.append(steps * batch / (time.perf_counter() - t0))
        lim.append(limit_block(dataclasses.replace(cfg, weights=""), steps))
    gen.close()
    p, m = statistics.median(pipe), statistics.median(lim)
    return {
        "size": size,
        "folder": folder.name,
        "backbone": backbone,
        "small_stem": small_stem,
        "batch": batch,
        "pipeline_img_s": p,
        "limit_img_s": m,
        "efficiency": p / m,
        "pipeline_runs": pipe,
        "limit_runs": lim,
    }


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=3, help="steps per timed block")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--backbone", default="resnet18")
    ap.add_argument(
        "--small-stem",
        default="off",
        choices=("auto", "on", "off"),
        help="off (default): the faster model makes the data pipeline's share largest",
    )
    ap.add_argument("--json", default=str(ROOT / "bench" / "results" / "throughput.json"))
    args = ap.parse_args()
    cases = [
        (DATA / "cifar10-subset" / "train", 32, "natural"),
        (DATA / "crc-he-subset" / "train", 64, "histopathology"),
    ]
    rows = []
    for folder, size, pname in cases:
        if not folder.is_dir():
            print(f"skipping {folder}: not found")
            continue
        rows.append(
            measure(
                folder,
                size,
                pname,
                args.batch,
                args.steps,
                args.repeats,
                args.backbone,
                args.small_stem,
            )
        )
    print(
        f"\n{'size':>5} {'data':<16} {'pipeline img/s':>15} {'limit img/s':>12} {'efficiency':>10}"
    )
    for r in rows:
        print(
            f"{r['size']:>5} {r['folder']:<16} {r['pipeline_img_s']:>15.1f} "
            f"{r['limit_img_s']:>12.1f} {r['efficiency']:>10.3f}"
        )
    record.write(
        Path(args.json),
        {
            "cpu_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "repeats": args.repeats,
            "steps_per_block": args.steps,
            "rows": rows,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
