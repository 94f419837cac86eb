"""The exported tool's embedding throughput on the CPU: onnxruntime against PyTorch, side by side.

For each size a resnet18 run is trained for one step on the sample H&E tiles and exported with
the real exporter (``sslstudio.core.export.bundle.export_bundle``), so the ONNX graph is the one
users
get. Then, interleaved block by block in one process with the same thread count for both:

- torch: ``method.embed`` (the exported computation) on a ready-made (B, 3, S, S) batch;
- onnxruntime: the bundle's model on the same batch, through the tool's ``Model``;
- tool: ``sslstudio-tool embed`` end to end (decode the files, preprocess, run, normalise).

Each repeat times the fastest of 3 calls; the table reports medians over the repeats, and the
ratio onnxruntime / torch as the median of the per-repeat ratios (same inputs, same threads).

    python bench/tool.py                                 # 64 and 224 px, all cores
    python bench/tool.py --threads 1 --json bench/results/tool.json
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import record  # noqa: E402
from sslstudio.config import RunConfig  # noqa: E402
from sslstudio.core.explore.embed import load_method  # noqa: E402
from sslstudio.core.export.bundle import export_bundle  # noqa: E402
from sslstudio.core.train.trainer import train  # noqa: E402
from sslstudio.core.transforms.presets import preset  # noqa: E402
from sslstudio.tool.bundle import load_bundle  # noqa: E402
from sslstudio.tool.inference import Model, list_images  # noqa: E402

SAMPLES = ROOT / "resources" / "sample_images"


def cpu_model() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return next(x.split(":", 1)[1].strip() for x in lines if x.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor()


def build(work: Path, size: int, images: Path) -> tuple[Path, Path]:
    """(run folder, bundle folder): one training step, then the real export."""
    cfg = RunConfig(
        data_root=str(images),
        backbone="resnet18",
        image_size=size,
        batch_size=8,
        epochs=1,
        max_steps=1,
        checkpoint_every=1,
        monitor_every=0,
        out=str(work / f"run{size}"),
        threads=torch.get_num_threads(),
        augment=preset("histopathology", size),
        preset="histopathology",
        device="cpu",
    )
    for _ in train(cfg):
        pass
    return Path(cfg.out), export_bundle(cfg.out, work / f"bundle{size}", device="cpu")


def timed(fn, n: int) -> float:
    """Seconds per call: the fastest of ``n`` after one warm-up call. On a shared machine the
    fastest call is the one least disturbed by neighbours; the mean would measure them."""
    fn()
    best = float("inf")
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def bench_size(work: Path, size: int, batch: int, repeats: int, threads: int) -> dict:
    run, bundle_dir = build(work, size, SAMPLES)
    method, _, _ = load_method(run, device=torch.device("cpu"))
    method.eval()
    model = Model(load_bundle(bundle_dir), threads=threads, batch_size=batch)
    paths = model.embed_files(list_images(SAMPLES)).paths  # the tiles (not the attribution)
    pixels = np.stack([model.pixels(p) for p in paths[:batch]])  # (B, S, S, 3) uint8
    x = pixels.astype(np.float32) * model._a + model._b
    x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))  # the exact tensor both runtimes get
    xt = torch.from_numpy(x)
    session, spec = model.session, model.bundle

    def ort_forward() -> np.ndarray:
        return session.run([spec.onnx_output], {spec.onnx_input: x})[0]

    def torch_forward() -> torch.Tensor:
        with torch.inference_mode():
            return method.embed(xt)

    diff = float(np.abs(ort_forward() - torch_forward().numpy()).max())
    scale = float(np.abs(torch_forward().numpy()).max())
    runs: dict[str, list[float]] = {"torch": [], "onnxruntime": [], "tool": []}
    for _ in range(repeats):  # interleaved: machine noise hits all three alike
        runs["torch"].append(batch / timed(torch_forward, 3))
        runs["onnxruntime"].append(batch / timed(ort_forward, 3))
        t0 = time.perf_counter()
        done = model.embed_files(paths)
        runs["tool"].append(len(done.paths) / (time.perf_counter() - t0))
    med = {k: statistics.median(v) for k, v in runs.items()}
    # each repeat's two numbers ran seconds apart: their ratio cancels slow drifts in load
    paired = statistics.median(o / t for o, t in zip(runs["onnxruntime"], runs["torch"]))
    return {
        "size": size,
        "backbone": "resnet18",
        "small_stem": bool(method.backbone.small_stem),
        "batch": batch,
        "threads": threads,
        "tool_images": len(paths),
        "torch_img_s": med["torch"],
        "onnxruntime_img_s": med["onnxruntime"],
        "tool_end_to_end_img_s": med["tool"],
        "ratio_onnxruntime_over_torch": paired,
        "max_abs_diff": diff,
        "max_abs_feature": scale,
        "runs": runs,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 224])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--json", default=str(ROOT / "bench" / "results" / "tool.json"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    import onnxruntime

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["SSLSTUDIO_HOME"] = tmp  # runs and caches stay out of the user's home
        for size in args.sizes:
            rows.append(bench_size(Path(tmp), size, args.batch, args.repeats, args.threads))
            r = rows[-1]
            print(
                f"{size} px done: torch {r['torch_img_s']:.1f}, ort {r['onnxruntime_img_s']:.1f}",
                file=sys.stderr,
            )
    print(
        f"\nresnet18, CPU, {args.threads} threads, batch {args.batch}, median of "
        f"{args.repeats} interleaved repeats (images/s)"
    )
    print(
        f"{'size':>5} {'torch fwd':>10} {'ort fwd':>10} {'ort/torch':>10} "
        f"{'tool embed':>11} {'max |diff|':>11}"
    )
    for r in rows:
        print(
            f"{r['size']:>5} {r['torch_img_s']:>10.1f} {r['onnxruntime_img_s']:>10.1f} "
            f"{r['ratio_onnxruntime_over_torch']:>10.2f} {r['tool_end_to_end_img_s']:>11.1f} "
            f"{r['max_abs_diff']:>11.2e}"
        )
    record.write(
        Path(args.json),
        {
            "processor": cpu_model(),
            "cpu_threads": os.cpu_count(),
            "torch": torch.__version__,
            "onnxruntime": onnxruntime.__version__,
            "repeats": args.repeats,
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
