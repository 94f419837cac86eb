"""The GPU fast path on a CUDA card: augmentation parity with the CPU, then pipeline efficiency.

1. Parity: the same uint8 batch and (seed, step) give the same views on CUDA as on the CPU
   (the preview runs on the CPU, training on the GPU: they must agree).
2. Throughput: the real trainer (decoded cache -> pinned copy -> views made on the GPU with
   per-image parameters -> SimCLR step) against the model-only limit (forward + backward +
   optimizer step on ready-made tensors of the same shape, same precision and memory format),
   interleaved block by block, for fp32, AMP (bf16), AMP + channels_last and, at one size,
   AMP + channels_last + torch.compile. Efficiency = pipeline / limit.

Images: a generated folder of smooth random-texture JPEGs (no dataset travels to the card).

    python bench/gpu.py --json bench/results/gpu.json
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import record  # noqa: E402
from sslstudio.config import RunConfig  # noqa: E402
from sslstudio.core.events import RunStarted, StepLogged  # noqa: E402
from sslstudio.core.methods import Batch, build_method  # noqa: E402
from sslstudio.core.train.optimizers import build_optimizer  # noqa: E402
from sslstudio.core.train.trainer import train  # noqa: E402
from sslstudio.core.transforms.presets import preset  # noqa: E402
from sslstudio.core.transforms.views import ViewPipeline, ViewSpec, step_generator  # noqa: E402

VARIANTS = {
    "fp32": dict(amp=False, channels_last=False, compile=False),
    "amp": dict(amp=True, channels_last=False, compile=False),
    "amp+cl": dict(amp=True, channels_last=True, compile=False),
    "amp+cl+compile": dict(amp=True, channels_last=True, compile=True),
}


def make_folder(root: Path, n: int, side: int) -> Path:
    root.mkdir(parents=True, exist_ok=True)

    def one(i: int) -> None:
        rng = np.random.default_rng(i)
        low = rng.integers(0, 256, (side // 16, side // 16, 3), dtype=np.uint8)
        img = Image.fromarray(low).resize((side, side), Image.BICUBIC)
        img.save(root / f"img{i:05d}.jpg", quality=90)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(one, range(n)))
    return root


def parity(size: int) -> dict:
    x = torch.randint(0, 256, (64, 3, size * 3 // 2, size * 3 // 2), dtype=torch.uint8)
    aug = preset("histopathology", size)
    pipe = ViewPipeline([ViewSpec(size=size, augment=aug, count=2)])
    cpu = pipe(x, step_generator(0, 7))
    gpu = pipe(x.cuda(), step_generator(0, 7))
    err = max(float((a - b.cpu()).abs().max()) for a, b in zip(cpu, gpu))
    return {"size": size, "max_abs_diff": err}


def limit_block(cfg: RunConfig, steps: int, method, opt) -> float:
    dt = torch.bfloat16 if cfg.amp else None
    views = [
        torch.randn(cfg.batch_size, 3, cfg.image_size, cfg.image_size, device="cuda")
        for _ in range(2)
    ]
    if cfg.channels_last:
        views = [v.contiguous(memory_format=torch.channels_last) for v in views]
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        with torch.autocast("cuda", dtype=dt, enabled=dt is not None):
            loss, _ = method.training_step(Batch(views))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    loss.item()
    return steps * cfg.batch_size / (time.perf_counter() - t0)


def make_limit(cfg: RunConfig):
    torch.manual_seed(0)
    method = build_method(dataclasses.replace(cfg, weights="")).cuda().train()
    if cfg.channels_last:
        method = method.to(memory_format=torch.channels_last)
    if cfg.compile:
        method.backbone.compile()
    opt = build_optimizer(method, cfg.optim, 0.01)
    limit_block(cfg, 3, method, opt)  # warm-up: kernels, allocator, compilation
    return method, opt


def measure(folder: Path, size: int, variant: str, batch: int, steps: int, repeats: int) -> dict:
    cfg = RunConfig(
        data_root=str(folder),
        backbone="resnet18",
        small_stem="off",
        image_size=size,
        batch_size=batch,
        epochs=1000,
        preset="histopathology",
        augment=preset("histopathology", size),
        monitor_every=0,
        checkpoint_every=10**9,
        device="cuda",
        out=tempfile.mkdtemp(prefix="sslstudio-gpu-"),
        **VARIANTS[variant],
    )
    t_start = time.perf_counter()
    gen = train(cfg)
    for ev in gen:
        if isinstance(ev, RunStarted):
            break
    waits = []
    for ev in gen:  # warm-up steps (compilation happens here)
        if isinstance(ev, StepLogged) and ev.step >= 2:
            break
    warm_s = time.perf_counter() - t_start
    method, opt = make_limit(cfg)
    pipe, lim = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        n = 0
        for ev in gen:
            if isinstance(ev, StepLogged):
                n += 1
                waits.append(ev.data_wait)
                if n == steps:
                    break
        pipe.append(steps * batch / (time.perf_counter() - t0))
        lim.append(limit_block(cfg, steps, method, opt))
    gen.close()
    p, m = statistics.median(pipe), statistics.median(lim)
    row = {
        "size": size,
        "variant": variant,
        "batch": batch,
        "pipeline_img_s": p,
        "limit_img_s": m,
        "efficiency": p / m,
        "data_wait": statistics.median(waits),
        "start_s": warm_s,
        "pipeline_runs": pipe,
        "limit_runs": lim,
    }
    print(
        f"{size:>5} {variant:<16} {p:>10.0f} {m:>10.0f} {p / m:>7.3f} {row['data_wait']:>7.3f} "
        f"{warm_s:>7.1f}",
        flush=True,
    )
    del method, opt
    torch.cuda.empty_cache()
    return row


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sizes", default="64,96,224")
    ap.add_argument("--variants", default="fp32,amp,amp+cl")
    ap.add_argument(
        "--compile-size",
        type=int,
        default=96,
        help="the one size also run with torch.compile (0 = none)",
    )
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--images", type=int, default=3072)
    ap.add_argument("--json", default=str(ROOT / "bench" / "results" / "gpu.json"))
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to measure")
        return 1
    torch.backends.cudnn.benchmark = True
    card = torch.cuda.get_device_name(0)
    print(f"card: {card}  torch {torch.__version__}", flush=True)
    checks = [parity(s) for s in (64, 224)]
    for c in checks:
        print(f"parity {c['size']} px: max |cpu - cuda| = {c['max_abs_diff']:.2e}", flush=True)
    t0 = time.perf_counter()
    folder = make_folder(Path(tempfile.mkdtemp()) / "imgs", args.images, 336)
    print(f"generated {args.images} images in {time.perf_counter() - t0:.1f} s", flush=True)
    print(
        f"\n{'size':>5} {'variant':<16} {'pipe img/s':>10} {'limit':>10} {'eff':>7} {'wait':>7} "
        f"{'start':>7}"
    )
    rows = []
    for size in [int(s) for s in args.sizes.split(",")]:
        variants = args.variants.split(",") + (
            ["amp+cl+compile"] if size == args.compile_size else []
        )
        for v in variants:
            try:
                rows.append(measure(folder, size, v, args.batch, args.steps, args.repeats))
            except Exception as exc:  # one failing variant must not lose the others' numbers
                print(f"{size:>5} {v:<16} FAILED: {type(exc).__name__}: {exc}", flush=True)
                rows.append({"size": size, "variant": v, "error": f"{type(exc).__name__}: {exc}"})
    record.write(
        Path(args.json),
        {
            "card": card,
            "torch": torch.__version__,
            "parity": checks,
            "steps_per_block": args.steps,
            "repeats": args.repeats,
            "rows": rows,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
