"""Every method of the zoo for the same CPU budget: kNN and linear probe beside random init.

Each (method, data set) pair trains for the same budget of one core's time on the quiet
machine: the seconds per step of each pair are measured first (``--calibrate``, one thread,
nothing else running), the step count follows, and the runs then execute ``--jobs`` at a time,
one thread each. A run's result depends only on its step count (training is deterministic for a
seed), so other work on the machine changes the wall time, not the numbers.

Each run trains with the method's defaults (``method_optim``: AdamW unless the method says
otherwise), then embeds ``train/`` and ``val/`` with the trained backbone and
with **the same network at random initialisation** (same seed) and reports: weighted kNN
top-1 (k=200, τ=0.1), a linear probe (the studio's class-balanced logistic regression on
standardised, then L2-normalised features, all ``train/`` labels, accuracy on ``val/``), the
collapse metrics
of the ``val/`` features (std×√d, RankMe), seconds per step, and the run's peak memory.

    python bench/methods.py --minutes 4                      # every method, both sets
    python bench/methods.py --methods simclr,byol --sets cifar10-subset
    python bench/methods.py --seeds 1,2 --methods simclr,vicreg,byol   # the spread of the top three
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import record  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
SETS = {  # name: (image size, preset)
    "cifar10-subset": (32, "natural"),
    "crc-he-subset": (64, "histopathology"),
}
RESULTS = ROOT / "bench" / "results" / "methods"


def config(
    method: str,
    data: str,
    seed: int = 0,
    steps: int = 0,
    out: str = "",
    options: dict | None = None,
    optim: dict | None = None,
):
    """The run's config: the method's CPU recipe, batch 128, crops of 25-100 %, one thread."""
    from sslstudio.config import RunConfig
    from sslstudio.core.methods import METHODS, method_optim
    from sslstudio.core.transforms.presets import preset

    size, domain = SETS[data]
    cls = METHODS[method]
    backbone = cls.requires_backbone_family and "vit_tiny" or "resnet18"
    augment = dataclasses.replace(preset(domain, size), crop_scale_min=0.25)
    n_images = sum(1 for p in (DATA / data / "train").rglob("*") if p.is_file())
    warmup = 0.05 * steps * 128 / n_images if steps else 0.5
    return RunConfig(
        data_root=str(DATA / data / "train"),
        method=method,
        backbone=backbone,
        small_stem="off",
        image_size=size,
        batch_size=128,
        epochs=10_000,
        max_steps=steps,
        seed=seed,
        preset="custom",
        augment=augment,
        optim=dataclasses.replace(
            method_optim(method), warmup_epochs=warmup, min_lr_ratio=0.0, **(optim or {})
        ),
        method_options=dict(options or {}),
        monitor_every=0,
        checkpoint_every=10**9,
        threads=1,
        out=out,
    )


def calibrate(methods: list[str], sets: list[str], steps: int = 3) -> dict[str, float]:
    """Seconds per real training step of each pair, on one thread (run on a quiet machine)."""
    import torch

    from sslstudio.core.train.steptime import time_steps

    torch.set_num_threads(1)
    out = {}
    for data in sets:
        for m in methods:
            t = time_steps(config(m, data), 1000, steps=steps)
            out[f"{m}@{data}"] = t.seconds_per_step
            print(f"  {m:<13} {data:<15} {t.seconds_per_step:.3f} s/step", flush=True)
    return out


def peak_rss_mb() -> float:
    """This process's resident-memory high-water mark. Not ``getrusage``: Linux carries its
    ``ru_maxrss`` over ``exec``, so a child would report its parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux: best effort


def memory(method: str, data: str, steps: int = 4) -> float:
    """Peak memory of a few training steps of the pair (the peak comes in the first steps)."""
    import torch

    from sslstudio.core.train.trainer import train

    torch.set_num_threads(1)
    for _ in train(
        config(method, data, 0, steps, tempfile.mkdtemp(prefix=f"sslstudio-mem-{method}-"))
    ):
        pass
    return peak_rss_mb()


def evaluate(method, data: str, size: int) -> dict[str, float]:
    import numpy as np
    import torch

    from bench import protocol
    from sslstudio.core.explore import classify as cl
    from sslstudio.core.explore.embed import embed_folder
    from sslstudio.core.maths.knn import knn_accuracy

    tr = embed_folder(method, DATA / data / "train", size)
    te = embed_folder(method, DATA / data / "val", size)

    def unit(x):
        return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)

    knn = knn_accuracy(
        torch.from_numpy(tr.features),
        torch.from_numpy(tr.labels),
        torch.from_numpy(te.features),
        torch.from_numpy(te.labels),
        k=200,
        temperature=0.1,
    )
    # the linear probe sees standardised features (train statistics), as MAE's probe puts a
    # BatchNorm without affine before its classifier: a few dominant dimensions do not drown the
    # rest
    mu, sd = tr.features.mean(0), tr.features.std(0) + 1e-6
    probe = cl.fit("linear", unit((tr.features - mu) / sd), tr.labels, tr.classes)
    linear = float(
        (probe.probabilities(unit((te.features - mu) / sd)).argmax(1) == te.labels).mean()
    )
    z = torch.from_numpy(te.features)
    # the other query sets of the protocol (crc-he-shifted for H&E; none for CIFAR)
    others = {
        f"knn_{k}": v
        for k, v in protocol.knn_scores(method, DATA / data, size).items()
        if k != "val"
    }
    return {"knn": knn, **others, "linear": linear, **spread(z)}


def spread(z) -> dict[str, float]:
    """Collapse metrics of ``val/`` features ``z``: as the studio's monitor computes them, and on
    centred features. A large offset shared by every image (CPC's pooled tile features) makes
    the raw ones read 'collapsed' while the images still differ; centring sees past it."""
    from sslstudio.core.train.monitor import rankme, std_sqrt_d

    zc = z - z.mean(0)
    return {
        "std_sqrt_d": std_sqrt_d(z),
        "rankme": rankme(z),
        "std_sqrt_d_centred": std_sqrt_d(zc),
        "rankme_centred": rankme(zc),
        "dim": int(z.shape[1]),
    }


def one(method: str, data: str, steps: int, seed: int, options: dict, optim: dict) -> dict:
    """Train one pair for ``steps`` steps on one thread, then evaluate it beside random init."""
    import torch

    from bench import protocol
    from sslstudio.core.events import RunFailed, RunFinished, StepLogged
    from sslstudio.core.explore.embed import load_method, random_init_method
    from sslstudio.core.train.trainer import train

    torch.set_num_threads(1)
    size = SETS[data][0]
    cfg = config(
        method, data, seed, steps, tempfile.mkdtemp(prefix=f"sslstudio-m-{method}-"), options, optim
    )
    losses, t_first, t_last, run = [], None, None, None
    for ev in train(cfg):
        if isinstance(ev, StepLogged):
            losses.append(ev.loss)
            t_last = time.perf_counter()
            t_first = t_first or t_last
        elif isinstance(ev, RunFinished):
            run = Path(ev.path).parent.parent
        elif isinstance(ev, RunFailed):
            return {
                "method": method,
                "data": data,
                "seed": seed,
                "steps": steps,
                "failed": ev.message,
            }
    peak_mb = peak_rss_mb()
    trained, _, _ = load_method(run)
    row = {
        "method": method,
        "data": data,
        "seed": seed,
        "steps": steps,
        "backbone": cfg.backbone,
        "run": str(run),
        "optim": dataclasses.asdict(cfg.optim),
        "options": cfg.method_options,
        "seconds_per_step": (t_last - t_first) / max(1, len(losses) - 1),
        "peak_rss_mb": peak_mb,
        "first_loss": losses[0],
        "last_loss": losses[-1],
        "trained": evaluate(trained, data, size),
        "random_init": evaluate(random_init_method(cfg), data, size),
        "colour_baseline": protocol.colour_baseline(data, 32),
    }
    return row


def find_run(row: dict) -> Path | None:
    """The run folder of a result row (older rows did not record it: found by its config)."""
    if row.get("run"):
        return Path(row["run"])
    for folder in sorted(Path(tempfile.gettempdir()).glob(f"sslstudio-m-{row['method']}-*")):
        cfg = (
            json.loads((folder / "config.json").read_text())
            if (folder / "config.json").exists()
            else {}
        )
        if (
            Path(cfg.get("data_root", "")).parent.name == row["data"]
            and cfg.get("seed") == row["seed"]
            and cfg.get("max_steps") == row["steps"]
            and (folder / "checkpoints").is_dir()
        ):
            return folder
    return None


def reevaluate(path: Path) -> None:
    """Evaluate a finished row again with the current evaluation (same trained weights)."""
    import torch

    from sslstudio.core.explore.embed import load_method, random_init_method
    from sslstudio.core.train.runs import load_run_config

    torch.set_num_threads(1)
    row = json.loads(path.read_text())
    run = find_run(row)
    if "failed" in row or run is None:
        print(
            f"  {path.name}: {'failed' if 'failed' in row else 'run folder not found'}, left as it "
            "was"
        )
        return
    size = SETS[row["data"]][0]
    trained, cfg, _ = load_method(run)
    row["run"] = str(run)
    row["trained"] = evaluate(trained, row["data"], size)
    row["random_init"] = evaluate(random_init_method(load_run_config(run)), row["data"], size)
    path.write_text(json.dumps(row, indent=1))
    print(f"  {path.name}: {verdict(row)}", flush=True)


def respread(path: Path) -> None:
    """Add the centred collapse metrics to a finished row (``val/`` features only: quick)."""
    import torch

    from sslstudio.core.explore.embed import embed_folder, load_method, random_init_method
    from sslstudio.core.train.runs import load_run_config

    torch.set_num_threads(1)
    row = json.loads(path.read_text())
    run = find_run(row)
    if "failed" in row or run is None:
        return
    size = SETS[row["data"]][0]
    for key, net in (
        ("trained", load_method(run)[0]),
        ("random_init", random_init_method(load_run_config(run))),
    ):
        z = torch.from_numpy(embed_folder(net, DATA / row["data"] / "val", size).features)
        row[key].update(spread(z))
    row["run"] = str(run)
    path.write_text(json.dumps(row, indent=1))
    print(f"  {path.name}: {verdict(row)}", flush=True)


def launch(method: str, data: str, steps: int, seed: int, out: Path, extra: list[str]) -> dict:
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        __file__,
        "--one",
        method,
        "--set",
        data,
        "--steps",
        str(steps),
        "--seed",
        str(seed),
        "--json",
        str(out),
        *extra,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0 or not out.exists():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {
            "method": method,
            "data": data,
            "seed": seed,
            "steps": steps,
            "failed": " | ".join(tail),
        }
    row = json.loads(out.read_text())
    row["wall_s"] = time.perf_counter() - t0
    return row


def verdict(row: dict) -> str:
    """Judged by kNN for joint-embedding methods, by the linear probe for MAE and pretext tasks."""
    from sslstudio.core.train.monitor import collapse_warning

    measure = "linear" if row["method"] in ("mae", "rotnet", "colorization", "cpc") else "knn"
    t, r = row["trained"], row["random_init"]
    c = "_centred" if "rankme_centred" in t else ""
    warn = collapse_warning(t[f"std_sqrt_d{c}"], t[f"rankme{c}"], 500, t["dim"])
    gain = t[measure] - r[measure]
    return f"{measure} {gain:+.3f}" + (" COLLAPSED" if warn else "")


def table(rows: list[dict]) -> str:
    mem_file = RESULTS / "memory.json"
    mem = json.loads(mem_file.read_text()) if mem_file.exists() else {}
    cal_file = RESULTS / "calibration.json"  # seconds per step, quiet machine, one thread
    cal = json.loads(cal_file.read_text()) if cal_file.exists() else {}
    head = (
        "| data | method | steps | s/step | peak MB | kNN random → trained "
        "| kNN crc-he-shifted random → trained | linear random → trained "
        "| std×√d (centred) | RankMe (centred) | judged by "
        "|\n|---|---|---|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for r in sorted(rows, key=lambda r: (r["data"], r["method"], r["seed"])):
        if "failed" in r:
            lines.append(f"| {r['data']} | {r['method']} | failed: {r['failed'][:80]} ||||||||")
            continue
        t, z = r["trained"], r["random_init"]
        seed = "" if r["seed"] == 0 else f" (seed {r['seed']})"
        shifted = f"{z['knn_shifted']:.3f} → {t['knn_shifted']:.3f}" if "knn_shifted" in t else "–"
        mb = mem.get(f"{r['method']}@{r['data']}", r["peak_rss_mb"])
        sps = cal.get(f"{r['method']}@{r['data']}", r["seconds_per_step"])
        lines.append(
            f"| {r['data']} | {r['method']}{seed} | {r['steps']} "
            f"| {sps:.2f} | {mb:.0f} | {z['knn']:.3f} → {t['knn']:.3f} | {shifted} "
            f"| {z['linear']:.3f} → {t['linear']:.3f} | "
            f"{t.get('std_sqrt_d_centred', t['std_sqrt_d']):.2f} | "
            f"{t.get('rankme_centred', t['rankme']):.0f} "
            f"| {verdict(r)} |"
        )
    return "\n".join(lines)


def parse(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--minutes", type=float, default=4.0, help="one core's training time per run")
    ap.add_argument("--methods", default="all")
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument(
        "--calibration",
        type=Path,
        default=RESULTS / "calibration.json",
        help="seconds per step per pair; measured (quietly) when missing",
    )
    ap.add_argument(
        "--option", action="append", default=[], help="KEY=VALUE method option (a trial)"
    )
    ap.add_argument(
        "--optim", action="append", default=[], help="KEY=VALUE optimiser field (a trial)"
    )
    ap.add_argument("--tag", default="", help="suffix of the result files (a trial)")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--set", help=argparse.SUPPRESS)
    ap.add_argument("--steps", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--json", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--reevaluate", nargs="*", type=Path, help="evaluate these result files again")
    ap.add_argument("--table", nargs="*", type=Path, help="print the table of these result files")
    ap.add_argument(
        "--respread",
        nargs="*",
        type=Path,
        help="add centred collapse metrics to these result files",
    )
    ap.add_argument(
        "--memory", action="store_true", help="measure each pair's peak memory (a few steps each)"
    )
    ap.add_argument("--one-memory", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one_memory:
        print(json.dumps({"peak_rss_mb": memory(args.one_memory, args.set)}))
        return 0
    if args.memory:
        from sslstudio.core.methods import METHODS

        out = {}
        for d in args.sets.split(","):
            for m in sorted(METHODS) if args.methods == "all" else args.methods.split(","):
                proc = subprocess.run(
                    [sys.executable, __file__, "--one-memory", m, "--set", d],
                    capture_output=True,
                    text=True,
                    env={**os.environ, "OMP_NUM_THREADS": "1"},
                )
                out[f"{m}@{d}"] = json.loads(proc.stdout.strip().splitlines()[-1])["peak_rss_mb"]
                print(f"  {m:<13} {d:<15} {out[f'{m}@{d}']:.0f} MB", flush=True)
        (RESULTS / "memory.json").write_text(json.dumps(out, indent=1, sort_keys=True))
        return 0
    if args.reevaluate:
        for path in args.reevaluate:
            reevaluate(path)
        return 0
    if args.respread:
        for path in args.respread:
            respread(path)
        return 0
    if args.table:
        print(table([json.loads(p.read_text()) for p in args.table]))
        return 0
    if args.one:
        row = one(args.one, args.set, args.steps, args.seed, parse(args.option), parse(args.optim))
        args.json.write_text(json.dumps(row, indent=1))
        return 0
    from sslstudio.core.methods import METHODS

    methods = sorted(METHODS) if args.methods == "all" else args.methods.split(",")
    sets = args.sets.split(",")
    known = json.loads(args.calibration.read_text()) if args.calibration.exists() else {}
    missing = [m for m in methods if any(f"{m}@{d}" not in known for d in sets)]
    if missing:
        print(f"calibrating {len(missing)} methods on one thread (keep the machine quiet)")
        known.update(calibrate(missing, sets))
        args.calibration.parent.mkdir(parents=True, exist_ok=True)
        args.calibration.write_text(json.dumps(known, indent=1, sort_keys=True))
    budget = args.minutes * 60
    jobs = [
        (m, d, max(1, int(budget / known[f"{m}@{d}"])), int(s))
        for s in args.seeds.split(",")
        for d in sets
        for m in methods
    ]
    print(f"{len(jobs)} runs of {args.minutes:g} core-minutes, {args.jobs} at a time")
    rows = []
    with ThreadPoolExecutor(args.jobs) as pool:
        extra = [x for kv in args.option for x in ("--option", kv)] + [
            x for kv in args.optim for x in ("--optim", kv)
        ]
        futures = [
            pool.submit(launch, m, d, n, s, RESULTS / f"{m}-{d}-seed{s}{args.tag}.json", extra)
            for m, d, n, s in jobs
        ]
        for f in futures:
            r = f.result()
            rows.append(r)
            print(
                f"  {r['method']:<13} {r['data']:<15} seed {r['seed']} {r['steps']:>5} steps  "
                + (f"FAILED {r['failed']}" if "failed" in r else verdict(r)),
                flush=True,
            )
    print("\n" + table(rows))
    stamp = time.strftime("%H%M%S")
    record.write(RESULTS / f"summary-{stamp}.json", {"minutes": args.minutes, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
