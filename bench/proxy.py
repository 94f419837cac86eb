"""Does the label-free proxy rank checkpoints the way the benchmark's kNN does?

The studio keeps the best checkpoint of a run by a quality signal: online kNN on its 512-image
probe set when the folder has labels, otherwise the label-free proxy, own-view retrieval (an
image's augmented view must find the image among the probe set's centre views). Here, on each
labelled benchmark set, two runs of the budget planner's CPU recipe (SimCLR, τ 0.2, ResNet-18,
32 px, batch 128, AdamW) save a checkpoint at every probe:

  good   the planner's learning rate (4e-3 per 256 on natural images, 2e-3 on H&E)
  bad    25× that learning rate: a run that goes wrong, so that some checkpoints fall below
         the untrained network and the proxy has to say so

Every checkpoint, and the network at step 0 (random init, shared by both runs: same seed), is
evaluated with the full kNN of the other benchmarks (k=200, τ=0.1, ``train/`` as memory,
``val/`` as queries). Reported: Spearman rank correlation of the proxy (and of the online probe
kNN) against the full kNN, per run and pooled; and how often the proxy's "worse than random init"
(below its step-0 score) agrees with the full kNN's.

    python bench/proxy.py                       # both sets side by side, one thread each
    python bench/proxy.py --sets crc-he-subset --steps 240
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"
SETS = {"cifar10-subset": ("natural", 4e-3), "crc-he-subset": ("histopathology", 2e-3)}
BAD_LR = 25.0
OUT = ROOT / "bench" / "results" / "proxy.json"


def base_config(name: str, steps: int, probes: int, out: str):
    from sslstudio.config import OptimConfig, RunConfig
    from sslstudio.core.transforms.presets import preset

    domain, lr = SETS[name]
    augment = dataclasses.replace(preset(domain, 32), crop_scale_min=0.25)
    every = max(1, steps // probes)
    return RunConfig(
        data_root=str(DATA / name / "train"),
        method="simclr",
        method_options={"temperature": 0.2},
        backbone="resnet18",
        small_stem="off",
        image_size=32,
        preset=domain,
        augment=augment,
        optim=OptimConfig(optimizer="adamw", lr=lr, weight_decay=1e-4, warmup_epochs=0.5),
        batch_size=128,
        epochs=10**4,
        max_steps=every * probes,
        checkpoint_every=every,
        monitor_every=every,
        probe_size=512,
        threads=1,
        seed=0,
        out=out,
    )


def train_keeping(cfg) -> tuple[Path, dict[int, Path], str, str]:
    """Train; copy every checkpoint as it is written (the trainer keeps only the newest).
    Returns the run folder, {step: checkpoint}, the recommended checkpoint and any error (a run
    that goes wrong may end in an error: its checkpoints so far still count)."""
    from sslstudio.core.events import CheckpointSaved, RunFinished, RunStarted
    from sslstudio.core.train.trainer import train

    saved: dict[int, Path] = {}
    run_dir, recommended, error = None, "", ""
    try:
        for ev in train(cfg):
            if isinstance(ev, RunStarted):
                run_dir = Path(ev.run_dir)
            elif isinstance(ev, CheckpointSaved):
                # beside the run's own (load_method reads the run's config from there); a
                # name the trainer's pruning of step_* leaves alone
                kept = Path(ev.path).parent / f"kept-{ev.step:07d}"
                saved[ev.step] = Path(shutil.copytree(ev.path, kept))
            elif isinstance(ev, RunFinished):
                saved[ev.step] = Path(ev.path)
                recommended = ev.recommended
    except Exception as exc:  # noqa: BLE001  (reported in the results, not hidden)
        error = f"{type(exc).__name__}: {exc}"
    return run_dir, saved, recommended, error


def one_set(name: str, steps: int, probes: int) -> dict:
    import torch

    from bench import protocol
    from sslstudio.core.explore.embed import load_method, random_init_method
    from sslstudio.core.train.runs import read_metrics

    torch.set_num_threads(1)
    data = DATA / name
    tmp = Path(tempfile.mkdtemp(prefix=f"sslstudio-proxy-{name}-"))

    def full_knn(method) -> dict[str, float]:  # noqa: ANN001
        return protocol.knn_scores(method, data, 32)  # val, and crc-he-shifted for H&E

    good = base_config(name, steps, probes, str(tmp / "good"))
    bad = dataclasses.replace(
        good, optim=dataclasses.replace(good.optim, lr=good.optim.lr * BAD_LR), out=str(tmp / "bad")
    )
    scores0 = full_knn(random_init_method(good))
    knn0 = scores0["val"]
    runs = {}
    for label, cfg in (("good", good), ("bad", bad)):
        t0 = time.perf_counter()
        run_dir, saved, recommended, error = train_keeping(cfg)
        wall = time.perf_counter() - t0
        monitors = {m["step"]: m for m in read_metrics(run_dir) if m["kind"] == "monitor"}
        rows = [
            {
                "step": 0,
                "knn": knn0,
                "knn_shifted": scores0.get("shifted"),
                "proxy": monitors[0]["view_top1"],
                "online": monitors[0]["knn_top1"],
            }
        ]
        for step, path in sorted(saved.items()):
            if step not in monitors:
                continue
            method, _, _ = load_method(path)
            m = monitors[step]
            scores = full_knn(method)
            rows.append(
                {
                    "step": step,
                    "knn": scores["val"],
                    "knn_shifted": scores.get("shifted"),
                    "proxy": m["view_top1"],
                    "online": m["knn_top1"],
                }
            )
            print(
                f"{name} {label} step {step}: kNN {rows[-1]['knn']:.3f} proxy {m['view_top1']:.3f}",
                flush=True,
            )
        final = saved[max(saved)] if saved else None
        rec_knn = None
        if recommended and final is not None and Path(recommended) != final:
            rec_knn = full_knn(load_method(Path(recommended))[0])["val"]
        elif final is not None:
            rec_knn = rows[-1]["knn"]
        runs[label] = {
            "lr": cfg.optim.lr,
            "train_s": wall,
            "error": error,
            "recommended": recommended,
            "recommended_knn": rec_knn,
            "rows": rows,
        }
    shutil.rmtree(tmp, ignore_errors=True)
    return {
        "data": name,
        "random_init_knn": knn0,
        "random_init_knn_shifted": scores0.get("shifted"),
        "colour_baseline": protocol.colour_baseline(name, 32),
        "runs": runs,
    }


def summarise(result: dict) -> dict:
    """Spearman per run and pooled, and the 'worse than random init' agreement."""
    from bench.budget import spearman

    rows0 = result["runs"]["good"]["rows"][0]
    pooled = [r for run in result["runs"].values() for r in run["rows"][1:]] + [rows0]
    out = {}
    for label, run in [*result["runs"].items(), ("pooled", {"rows": pooled})]:
        rows = run["rows"]
        knn = [r["knn"] for r in rows]
        out[label] = {
            "n": len(rows),
            "proxy_spearman": spearman([r["proxy"] for r in rows], knn),
            "online_spearman": spearman([r["online"] for r in rows], knn),
        }
    later = [r for r in pooled if r["step"] > 0]
    agree = sum((r["proxy"] < rows0["proxy"]) == (r["knn"] < rows0["knn"]) for r in later)
    below = sum(r["knn"] < rows0["knn"] for r in later)
    flagged = sum(r["proxy"] < rows0["proxy"] for r in later)
    out["below_random"] = {
        "checkpoints": len(later),
        "knn_below": below,
        "proxy_below": flagged,
        "agree": agree,
    }
    for label, run in result["runs"].items():
        best = max(run["rows"][1:], key=lambda r: r["knn"])
        out[label].update(
            best_knn=best["knn"],
            best_step=best["step"],
            recommended_knn=run["recommended_knn"],
            recommended=Path(run["recommended"]).name,
            error=run["error"],
        )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--steps", type=int, default=480, help="steps per run")
    ap.add_argument("--probes", type=int, default=8, help="probes (and kept checkpoints) per run")
    ap.add_argument("--json", type=Path, default=OUT)
    ap.add_argument("--set", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.set:  # one set, in its own process
        args.json.write_text(json.dumps(one_set(args.set, args.steps, args.probes), indent=1))
        return 0
    names = args.sets.split(",")
    tmp = Path(tempfile.mkdtemp(prefix="sslstudio-proxy-"))
    t0 = time.perf_counter()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--set",
                n,
                "--steps",
                str(args.steps),
                "--probes",
                str(args.probes),
                "--json",
                str(tmp / f"{n}.json"),
            ]
        )
        for n in names
    ]
    if any(p.wait() for p in procs):
        print("a set failed", file=sys.stderr)
        return 1
    results = []
    for n in names:
        r = json.loads((tmp / f"{n}.json").read_text())
        r["summary"] = summarise(r)
        results.append(r)
    print(
        f"\n{'data':<16} {'run':<7} {'ckpts':>5} {'proxy ρ':>8} {'online ρ':>8} {'best kNN':>9} {'kept kNN':>9}"
    )
    for r in results:
        s = r["summary"]
        for label in ("good", "bad", "pooled"):
            x = s[label]
            kept = x.get("recommended_knn")
            extra = (
                f"{x['best_knn']:>9.3f} {kept if kept is None else round(kept, 3):>9}"
                if label != "pooled"
                else ""
            )
            print(
                f"{r['data']:<16} {label:<7} {x['n']:>5} {x['proxy_spearman']:>8.2f} {x['online_spearman']:>8.2f} {extra}"
            )
        b = s["below_random"]
        print(
            f"{'':<16} below random init: kNN {b['knn_below']}/{b['checkpoints']}, proxy {b['proxy_below']}, agree {b['agree']}/{b['checkpoints']}"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                "results": results,
                "steps": args.steps,
                "probes": args.probes,
                "threads": 1,
                "wall_s": time.perf_counter() - t0,
                "machine": platform.platform(),
                "date": time.strftime("%Y-%m-%d"),
                "command": " ".join(sys.argv),
            },
            indent=1,
        )
    )
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
