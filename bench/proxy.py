"""Does the run's verdict tell the truth about images it never saw?

The studio judges a run in-run (core/train/verdict.py): its probe images under a strong
colour/stain shift, weighted kNN against the same images unshifted, beside the same network at
random init, with a paired bootstrap noise; "better" or "worse" only beyond that noise, else
"cannot tell". Here H&E runs of the budget planner's CPU recipe (SimCLR τ 0.2, ResNet-18, 32 px,
batch 128, AdamW 2e-3, one thread) on ``crc-he-subset/train`` save a checkpoint at every probe:

  natural     the natural preset (strong colour jitter, greyscale, blur)
  he-quarter  the histopathology preset with colour jitter at 0.25x (the planner's old H&E rule)
  he-full     the histopathology preset at full strength
  bad-lr      he-quarter at 25x the learning rate: a run that goes wrong

Every checkpoint (and random init) is scored by the truth the verdict should predict: weighted
kNN (k=200, τ=0.1) with ``crc-he-subset/train`` as memory and ``crc-he-shifted`` (another split,
stain shifted) as queries; ``crc-he-subset/val`` beside it. Reported per checkpoint: the in-run
verdict (sign, gap, noise) as logged by the trainer, and the kNN gap over random init with its
own paired bootstrap noise; then how often the verdict agrees in sign with the kNN gap where the
verdict decides (target: every one), and where both decide.

    python bench/proxy.py                              # 4 runs, two at a time, one thread each
    python bench/proxy.py --runs he-full,natural --steps 160 --probes 4
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import record  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
MEMORY, SHIFTED, VAL = "crc-he-subset/train", "crc-he-shifted", "crc-he-subset/val"
RUNS = {  # name: (preset, colour jitter factor, learning-rate factor)
    "natural": ("natural", 1.0, 1.0),
    "he-quarter": ("histopathology", 0.25, 1.0),
    "he-full": ("histopathology", 1.0, 1.0),
    "bad-lr": ("histopathology", 0.25, 25.0),
}
OUT = ROOT / "bench" / "results" / "proxy.json"


def run_config(name: str, steps: int, probes: int, out: str, batch: int = 128):
    from sslstudio.config import OptimConfig, RunConfig
    from sslstudio.core.transforms.presets import preset, with_jitter_strength

    domain, jitter, lr_factor = RUNS[name]
    augment = with_jitter_strength(
        dataclasses.replace(preset(domain, 32), crop_scale_min=0.25), jitter
    )
    every = max(1, steps // probes)
    return RunConfig(
        data_root=str(DATA / MEMORY),
        method="simclr",
        method_options={"temperature": 0.2},
        backbone="resnet18",
        small_stem="off",
        image_size=32,
        preset=domain,
        augment=augment,
        optim=OptimConfig(optimizer="adamw", lr=2e-3 * lr_factor, weight_decay=1e-4),
        batch_size=batch,
        epochs=10**4,
        max_steps=every * probes,
        checkpoint_every=every,
        monitor_every=every,
        probe_size=512,
        threads=1,
        seed=0,
        out=out,
    )


def train_keeping(cfg) -> tuple[Path | None, dict[int, Path], str, str]:
    """Train, copying every checkpoint as it is written (the trainer keeps only the newest).
    Returns the run folder, {step: checkpoint}, the recommendation's advice and any error."""
    from sslstudio.core.events import CheckpointSaved, RunFinished, RunStarted
    from sslstudio.core.train.trainer import train

    saved: dict[int, Path] = {}
    run_dir, advice, error = None, "", ""
    try:
        for ev in train(cfg):
            if isinstance(ev, RunStarted):
                run_dir = Path(ev.run_dir)
            elif isinstance(ev, CheckpointSaved):  # a name the trainer's pruning leaves alone
                kept = Path(ev.path).parent / f"kept-{ev.step:07d}"
                saved[ev.step] = Path(shutil.copytree(ev.path, kept))
            elif isinstance(ev, RunFinished):
                saved[ev.step] = Path(ev.path)
                advice = ev.advice
    except Exception as exc:  # noqa: BLE001  (reported in the results, not hidden)
        error = f"{type(exc).__name__}: {exc}"
    return run_dir, saved, advice, error


def knn_hits(method) -> dict[str, np.ndarray]:  # noqa: ANN001
    """Per query, 1 when weighted kNN against the memory answers right: shifted and val."""
    import torch

    from sslstudio.core.explore.embed import embed_folder
    from sslstudio.core.maths.knn import knn_predict

    mem = embed_folder(method, DATA / MEMORY, 32)
    out = {}
    for name, folder in (("shifted", SHIFTED), ("val", VAL)):
        q = embed_folder(method, DATA / folder, 32)
        pred = knn_predict(
            torch.from_numpy(mem.features),
            torch.from_numpy(mem.labels),
            torch.from_numpy(q.features),
            len(mem.classes),
        )
        out[name] = (pred.numpy() == q.labels).astype(float)
    return out


class ProbeSet:
    """The trainer's probe set for ``cfg`` (same rows), to score every kind of shift offline."""

    def __init__(self, cfg) -> None:  # noqa: ANN001
        from sslstudio.core.data.cache import build_cache
        from sslstudio.core.data.indexstore import open_index
        from sslstudio.core.train.prepare import median_short_side
        from sslstudio.core.train.verdict import near_duplicates, thumbnails
        from sslstudio.core.transforms.views import default_cache_size
        from sslstudio.paths import cache_dir

        index = open_index(cfg.data_root, cache_dir())
        side = default_cache_size(cfg.image_size, median_short_side(index))
        self.data = build_cache(index, side, cache_dir())
        n = len(self.data)
        perm = np.random.default_rng(cfg.seed).permutation(n)
        self.rows = np.sort(perm[: min(cfg.probe_size, n)])
        self.labels, self.cfg = self.data.labels(), cfg
        self.dup = near_duplicates(thumbnails(self.data, self.rows))

    def hits(self, method) -> dict[str, np.ndarray]:  # noqa: ANN001
        from sslstudio.core.train.verdict import SHIFTS, colour_reliance, shifted_hits

        args = (self.data, self.rows, self.labels, self.cfg.image_size, "cpu", self.cfg.seed)
        out = {v: shifted_hits(method, *args, duplicates=self.dup, shift=v) for v in SHIFTS}
        # less colour in the features' neighbourhoods than at random init counts as better
        out["colour-reliance"] = 1 - colour_reliance(method, *args[:2], args[3], "cpu")
        return out


def one_run(name: str, steps: int, probes: int, batch: int) -> dict:
    import torch

    from sslstudio.core.explore.embed import load_method, random_init_method
    from sslstudio.core.train.runs import read_metrics
    from sslstudio.core.train.verdict import judge, paired_noise

    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix=f"sslstudio-proxy-{name}-"))
    cfg = run_config(name, steps, probes, str(tmp / name), batch)
    ref = knn_hits(random_init_method(cfg))
    probe = ProbeSet(cfg)
    ref_variants = probe.hits(random_init_method(cfg))
    t0 = time.perf_counter()
    run_dir, saved, advice, error = train_keeping(cfg)
    wall = time.perf_counter() - t0
    monitors = {m["step"]: m for m in read_metrics(run_dir) if m["kind"] == "monitor"}
    rows = []
    for step, path in sorted(saved.items()):
        m = monitors.get(step)
        if m is None or m.get("shift_top1") is None:
            continue
        hits = knn_hits(load_method(path)[0])
        row = {"step": step, **{k: m.get(k) for k in ("shift_top1", "shift_ref", "shift_noise")}}
        row.update(verdict=m.get("verdict_sign"), in_folder_knn=m.get("knn_top1"))
        for s in ("shifted", "val"):
            row[f"knn_{s}"] = float(hits[s].mean())
            row[f"gap_{s}"] = float(hits[s].mean() - ref[s].mean())
            row[f"noise_{s}"] = paired_noise(hits[s], ref[s])
        hits_v = probe.hits(load_method(path)[0])
        row["variants"] = {}
        for v, h in hits_v.items():
            gap, noise = float(h.mean() - ref_variants[v].mean()), paired_noise(h, ref_variants[v])
            row["variants"][v] = {"gap": gap, "noise": noise, "sign": judge(gap, 0.0, noise)}
        rows.append(row)
        print(f"{name} step {step}: {json.dumps(row)}", flush=True)
    shutil.rmtree(tmp, ignore_errors=True)
    return {
        "run": name,
        "lr": cfg.optim.lr,
        "train_s": wall,
        "error": error,
        "advice": advice,
        "random_init": {s: float(h.mean()) for s, h in ref.items()},
        "rows": rows,
    }


def agreement(results: list[dict]) -> dict:
    """How often the verdict's sign matches the sign of the kNN gap on crc-he-shifted."""
    rows = [r for res in results for r in res["rows"]]
    decided = [r for r in rows if r["verdict"]]
    agree = [r for r in decided if np.sign(r["gap_shifted"]) == r["verdict"]]
    clear = [r for r in decided if abs(r["gap_shifted"]) > r["noise_shifted"]]
    clear_agree = [r for r in clear if np.sign(r["gap_shifted"]) == r["verdict"]]
    missed = [r for r in rows if not r["verdict"] and abs(r["gap_shifted"]) > r["noise_shifted"]]
    return {
        "checkpoints": len(rows),
        "verdict_decides": len(decided),
        "agree": len(agree),
        "both_decide": len(clear),
        "both_decide_agree": len(clear_agree),
        "knn_clear_but_verdict_unsure": len(missed),
    }


def variant_agreement(results: list[dict]) -> dict:
    """Per kind of shift (computed offline on the same probe set): decided / agreeing
    checkpoints."""
    rows = [r for res in results for r in res["rows"]]
    out = {}
    for v in rows[0]["variants"] if rows else ():
        decided = [r for r in rows if r["variants"][v]["sign"]]
        agree = [r for r in decided if np.sign(r["gap_shifted"]) == r["variants"][v]["sign"]]
        gaps = [r["variants"][v]["gap"] for r in rows]
        out[v] = {
            "decides": len(decided),
            "agree": len(agree),
            "checkpoints": len(rows),
            "corr_with_knn_gap": float(np.corrcoef(gaps, [r["gap_shifted"] for r in rows])[0, 1])
            if len(rows) > 2
            else None,
        }
    return out


def table(results: list[dict]) -> None:
    print(
        f"\n{'run':<11} {'step':>4} {'verdict':>8} {'gap ± noise':>14} "
        f"{'shifted kNN':>11} {'gap ± noise':>14} {'val kNN':>8} {'gap':>6}"
    )
    for res in results:
        ri = res["random_init"]
        print(
            f"{res['run']:<11} {0:>4} {'':>8} {'':>14} {ri['shifted']:>11.3f} {'':>14} "
            f"{ri['val']:>8.3f}"
        )
        for r in res["rows"]:
            word = {1: "better", -1: "WORSE", 0: "unsure"}.get(r["verdict"], "?")
            gap = r["shift_top1"] - r["shift_ref"]
            print(
                f"{'':<11} {r['step']:>4} {word:>8} {gap:>+7.3f} ±{r['shift_noise']:.3f} "
                f"{r['knn_shifted']:>11.3f} {r['gap_shifted']:>+7.3f} ±{r['noise_shifted']:.3f} "
                f"{r['knn_val']:>8.3f} {r['gap_val']:>+6.3f}"
            )
        print(
            f"{'':<11} recommended: {res['advice']}"
            + (f" [{res['error']}]" if res["error"] else "")
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", default=",".join(RUNS))
    ap.add_argument("--steps", type=int, default=240, help="steps per run")
    ap.add_argument("--probes", type=int, default=6, help="probes (and kept checkpoints) per run")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--parallel", type=int, default=2, help="runs at once (one thread each)")
    ap.add_argument("--json", type=Path, default=OUT)
    ap.add_argument("--run", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.run:  # one run, in its own process
        args.json.write_text(
            json.dumps(one_run(args.run, args.steps, args.probes, args.batch), indent=1)
        )
        return 0
    names, tmp, t0 = (
        args.runs.split(","),
        Path(tempfile.mkdtemp(prefix="sslstudio-proxy-")),
        time.perf_counter(),
    )
    waiting, running, failed = list(names), [], []
    while waiting or running:
        while waiting and len(running) < args.parallel:
            n = waiting.pop(0)
            cmd = [sys.executable, __file__, "--run", n, "--steps", str(args.steps)]
            cmd += ["--probes", str(args.probes), "--batch", str(args.batch)]
            cmd += ["--json", str(tmp / f"{n}.json")]
            running.append((n, subprocess.Popen(cmd)))
        time.sleep(2)
        for n, p in list(running):
            if p.poll() is not None:
                running.remove((n, p))
                failed += [n] if p.returncode else []
    results = [json.loads((tmp / f"{n}.json").read_text()) for n in names if n not in failed]
    table(results)
    agree = agreement(results)
    print(
        f"\nverdict vs kNN gap on {SHIFTED}: the verdict decides on {agree['verdict_decides']} of "
        f"{agree['checkpoints']} checkpoints and agrees in sign on {agree['agree']}; where the kNN "
        f"gap is beyond its noise too: {agree['both_decide_agree']}/{agree['both_decide']}; "
        f"kNN clear but verdict unsure: {agree['knn_clear_but_verdict_unsure']}"
        + (f"; failed runs: {failed}" if failed else "")
    )
    variants = variant_agreement(results)
    for v, x in variants.items():
        print(
            f"shift {v:<10}: decides {x['decides']}/{x['checkpoints']}, agrees {x['agree']}, "
            f"correlation of gaps with the kNN gap {x['corr_with_knn_gap']}"
        )
    record.write(
        args.json,
        {
            "results": results,
            "agreement": agree,
            "shift_variants": variants,
            "steps": args.steps,
            "batch": args.batch,
            "probes": args.probes,
            "threads": 1,
            "wall_s": time.perf_counter() - t0,
            "load_avg": os.getloadavg(),
        },
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
