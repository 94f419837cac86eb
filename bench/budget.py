"""Budget mode against its two peers, side by side: kNN top-1 after the same wall-clock budget.

For each labelled benchmark folder (train/ and val/ class subfolders):
  (a) the budget mode's own backbone at random initialisation (at the plan's resolution),
  (b) "standard SimCLR": a well-known library's defaults (batch 256, SGD lr 0.06 per 256,
      temperature 0.5, the domain preset, a 3x3 stem without max-pool at <= 64 px) with its
      cosine schedule sized to the same budget from a measured warm-up (a fair start: it also
      ends on time rather than being cut),
  (c) ``sslstudio train --budget`` (``plan_budget`` + the trainer's deadline), evaluated at the
      checkpoint the run recommends and at its final step.
Evaluation (bench/protocol.py): weighted kNN (k=200, tau=0.1, cosine), train split as memory,
val split as queries and, for H&E, crc-he-shifted too; beside the colour-statistics baseline.
Also reported: wall time against the budget, and how the label-free proxy (own-view retrieval)
ranks the run's probes against the online kNN (Spearman).

    python bench/budget.py --data ../shared/data/cifar10-subset --minutes 10
    python bench/budget.py --data ../shared/data/crc-he-subset --preset histopathology --minutes 10
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import protocol, record  # noqa: E402
from sslstudio.config import OptimConfig, RunConfig  # noqa: E402
from sslstudio.core.data.scan import scan_folder  # noqa: E402
from sslstudio.core.events import PlanRevised, RunFinished  # noqa: E402
from sslstudio.core.explore.embed import load_method, random_init_method  # noqa: E402
from sslstudio.core.train.budget import measure_seconds_per_step, plan_budget  # noqa: E402
from sslstudio.core.train.prepare import median_short_side  # noqa: E402
from sslstudio.core.train.runs import read_metrics  # noqa: E402
from sslstudio.core.train.trainer import train  # noqa: E402
from sslstudio.core.transforms.presets import preset  # noqa: E402


def spearman(a: list[float], b: list[float]) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1]) if len(a) > 2 else float("nan")


def run(cfg: RunConfig) -> tuple[Path, float, list]:
    t0 = time.perf_counter()
    revisions, done = [], None
    for ev in train(cfg):
        if isinstance(ev, PlanRevised):
            revisions.append((ev.step, ev.reason, ev.total_steps))
        elif isinstance(ev, RunFinished):
            done = ev
    return Path(done.path).parent.parent, time.perf_counter() - t0, [done, revisions]


def knn_of(run_dir: Path, checkpoint: str, data: Path, size: int) -> dict[str, float]:
    """kNN per query set of the protocol (val; crc-he-shifted for H&E) of one checkpoint."""
    method, cfg, _ = load_method(run_dir, which=checkpoint)
    return protocol.knn_scores(method, data, size, getattr(cfg, "input_norm", "none"))


def flat(scores: dict[str, float]) -> dict[str, float]:
    """``{"knn": val, "knn_shifted": ...}``: a row's columns, ``knn`` still the val split."""
    return {("knn" if k == "val" else f"knn_{k}"): v for k, v in scores.items()}


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", required=True)
    ap.add_argument("--preset", default="natural")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--skip-standard", action="store_true")
    ap.add_argument("--seed", type=int, default=0, help="the run's seed (weights, views, order)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--size", type=int, default=0, help="keep this training size (px) in the plan")
    ap.add_argument(
        "--progressive-from", type=int, default=0, help="start at this size, growing to --size"
    )
    ap.add_argument(
        "--method", default=None, help="keep this method (with its default options) in the plan"
    )
    args = ap.parse_args()
    data = Path(args.data)
    if args.threads:
        torch.set_num_threads(args.threads)
    budget_s = args.minutes * 60
    base = RunConfig(
        data_root=str(data / "train"),
        preset=args.preset,
        threads=args.threads,
        seed=args.seed,
        out=tempfile.mkdtemp(prefix="sslstudio-budget-"),
        **({"method": args.method, "method_options": {}} if args.method else {}),
        **({"image_size": args.size} if args.size else {}),
        **({"progressive_from": args.progressive_from} if args.progressive_from else {}),
    )
    keep = frozenset(
        ({"method", "method_options"} if args.method else set())
        | ({"image_size"} if args.size else set())
        | ({"progressive_from"} if args.progressive_from else set())
    )
    rows = []

    # (c) budget mode: planning counts against the budget, as it does for a user
    t0 = time.perf_counter()
    index = scan_folder(base.data_root, verify=False)
    plan = plan_budget(
        base,
        budget_s,
        len(index.images),
        keep=keep,
        native_side=median_short_side(index),
        started=t0,
    )
    print(plan.summary(), flush=True)
    run_dir, _, (done, revisions) = run(plan.config)
    wall = time.perf_counter() - t0
    size = plan.config.image_size
    norm = getattr(plan.config, "input_norm", "none")
    random_all = protocol.knn_scores(random_init_method(plan.config), data, size, norm)
    final_all = knn_of(run_dir, "final", data, size)
    recommended = Path(done.recommended).name if done.recommended else "final"
    chosen_all = final_all if recommended == "final" else knn_of(run_dir, recommended, data, size)
    random, final, chosen = random_all["val"], final_all["val"], chosen_all["val"]
    colour = protocol.colour_baseline(str(data), 32)
    monitors = [r for r in read_metrics(run_dir) if r["kind"] == "monitor"]
    proxy = [m["view_top1"] for m in monitors]
    online = [m["knn_top1"] for m in monitors]
    rows.append({"run": "colour statistics (k=20)", "size": 32, **flat(colour)})
    rows.append({"run": "random init", "size": size, **flat(random_all)})
    rows.append(
        {
            "run": "budget mode (recommended: " + recommended + ")",
            "size": size,
            **flat(chosen_all),
            "final_knn": final,
            "final_knn_all": final_all,
            "wall_s": wall,
            "overrun": wall / budget_s - 1,
            "steps": done.step,
            "revisions": revisions,
            "advice": done.advice,
        }
    )

    # (b) standard SimCLR for the same budget
    if not args.skip_standard:
        t0 = time.perf_counter()
        small = 64 if args.preset == "histopathology" else 32
        std = dataclasses.replace(
            base,
            method="simclr",
            method_options={"temperature": 0.5},
            backbone="resnet18",
            small_stem="auto",
            image_size=small,
            batch_size=256,
            augment=preset(args.preset, small),
            optim=OptimConfig(optimizer="sgd", lr=0.06, weight_decay=5e-4),
            monitor_every=0,
            checkpoint_every=10**9,
            out=tempfile.mkdtemp(prefix="sslstudio-std-"),
        )
        sps = measure_seconds_per_step(std)
        steps = max(1, int((budget_s - (time.perf_counter() - t0) - 10) / sps))
        std_dir, _, _ = run(
            dataclasses.replace(std, max_steps=steps, epochs=10**4, time_budget_s=budget_s - 5)
        )
        std_wall = time.perf_counter() - t0
        rows.append(
            {
                "run": "standard SimCLR",
                "size": small,
                **flat(knn_of(std_dir, "final", data, small)),
                "random_init_knn": protocol.knn_scores(random_init_method(std), data, small),
                "wall_s": std_wall,
                "steps": steps,
            }
        )

    print(f"\n{data.name}, budget {args.minutes:g} min, {plan.device}")
    print(f"{'run':<40} {'px':>4} {'kNN val':>9} {'shifted':>9} {'wall':>7}")
    for r in rows:
        shifted = f"{r['knn_shifted']:>9.4f}" if "knn_shifted" in r else f"{'-':>9}"
        print(
            f"{r['run']:<40} {r['size']:>4} {r['knn']:>9.4f} {shifted} {r.get('wall_s', 0):>6.0f}s"
        )
    gain = chosen - random
    gains = {k: chosen_all[k] - random_all[k] for k in chosen_all}
    over_colour = {k: chosen_all[k] - colour[k] for k in chosen_all}
    print(f"budget mode vs random init {gains}; vs colour statistics {over_colour}")
    rho = spearman(proxy, online)
    print(
        f"budget mode - random init: {gain:+.4f}; wall {wall:.0f} s of {budget_s:.0f} s "
        f"({100 * (wall / budget_s - 1):+.1f} %); proxy vs online kNN Spearman {rho:.2f} over "
        f"{len(proxy)} probes"
    )
    record.write(
        Path(args.json or ROOT / "bench" / "results" / f"budget-{data.name}.json"),
        {
            "data": data.name,
            "minutes": args.minutes,
            "device": plan.device,
            "plan": plan.to_dict(),
            "rows": rows,
            "gain_over_random": gain,
            "gain_over_random_by_set": gains,
            "gain_over_colour_by_set": over_colour,
            "proxy_spearman_vs_online_knn": rho,
            "proxy": proxy,
            "online_knn": online,
            "probe_steps": [m["step"] for m in monitors],
            "threads": torch.get_num_threads(),
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
