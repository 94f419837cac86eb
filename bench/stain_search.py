"""Search: which H&E recipe makes features carry tissue structure rather than slide colour?

Every trial is the budget planner's CPU recipe (SimCLR tau 0.2, ResNet-18, 32 px, batch 128,
AdamW 2e-3, crops 25-100 %) on ``crc-he-subset/train`` for a fixed number of steps (equal step
counts, not equal time: the machine is shared), one thread, with one thing changed: the
augmentation (colour-jitter strength, HED stain jitter range, greyscale views, crop scale) or an
input normalisation applied to every tile before training and before embedding. Scored by
bench/protocol.py on ``crc-he-subset/val`` and ``crc-he-shifted`` beside random init (under the
same normalisation) and the colour-statistics baseline.

    python bench/stain_search.py --trial full --steps 200
    python bench/stain_search.py --trial reinhard --steps 800 --seed 1
    python bench/stain_search.py --list
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import protocol, record  # noqa: E402
from sslstudio.config import RunConfig  # noqa: E402
from sslstudio.core.events import RunFinished, StepLogged  # noqa: E402
from sslstudio.core.explore.embed import load_method, random_init_method  # noqa: E402
from sslstudio.core.train import budget  # noqa: E402
from sslstudio.core.train.trainer import train  # noqa: E402
from sslstudio.core.transforms import views  # noqa: E402
from sslstudio.core.transforms.presets import preset, with_jitter_strength  # noqa: E402
from sslstudio.imaging.stain import normalise_tiles  # noqa: E402

OUT = ROOT / "bench" / "results" / "search"

# name -> (colour-jitter factor on the histopathology preset, AugmentConfig overrides, input
# normalisation); the base is the preset at 32 px with the planner's 25 % crops
TRIALS: dict[str, tuple[float, dict, str]] = {
    "quarter": (0.25, {}, "none"),  # the old planner rule
    "full": (1.0, {}, "none"),
    "none": (0.0, {"jitter_p": 0.0}, "none"),
    "hed-strong": (1.0, {"hed_sigma": 0.2}, "none"),
    "hed-strong-q": (0.25, {"hed_sigma": 0.2}, "none"),
    "grey50": (1.0, {"grey_p": 0.5}, "none"),
    "grey20": (1.0, {"grey_p": 0.2}, "none"),
    "strong-colour": (2.0, {"hed_sigma": 0.2, "grey_p": 0.2}, "none"),
    "reinhard": (1.0, {}, "reinhard"),
    "reinhard-q": (0.25, {}, "reinhard"),
    "reinhard-hed": (1.0, {"hed_sigma": 0.2}, "reinhard"),
    "reinhard-grey": (1.0, {"grey_p": 0.2}, "reinhard"),
    "crop08": (1.0, {"crop_scale_min": 0.08}, "none"),
    "reinhard-crop08": (1.0, {"crop_scale_min": 0.08}, "reinhard"),
    # the shifted split is also at another sharpness and apparent magnification (median Laplacian
    # variance 2,048 vs 4,829 on AC; larger crypts on H): views that vary scale and focus too
    "strong-crop08": (2.0, {"hed_sigma": 0.2, "grey_p": 0.2, "crop_scale_min": 0.08}, "none"),
    "strong-blur": (2.0, {"hed_sigma": 0.2, "grey_p": 0.2, "blur_p": 0.5}, "none"),
    "strong-scale-blur": (
        2.0,
        {"hed_sigma": 0.2, "grey_p": 0.2, "crop_scale_min": 0.08, "blur_p": 0.5},
        "none",
    ),
    "grey-all-blur": (2.0, {"hed_sigma": 0.2, "grey_p": 1.0, "blur_p": 0.5}, "none"),
}


def trial_config(
    name: str,
    steps: int,
    seed: int,
    out: str,
    every: int = 0,
    method: str = "simclr",
    threads: int = 1,
) -> tuple[RunConfig, str]:
    factor, overrides, norm = TRIALS[name]
    base = RunConfig(data_root=str(protocol.DATA / "crc-he-subset" / "train"))
    choice, _ = budget.rules(dataclasses.replace(base, preset="histopathology"), 600.0, "cpu", 224)
    aug = dataclasses.replace(preset("histopathology", 32), crop_scale_min=0.25)
    aug = dataclasses.replace(with_jitter_strength(aug, factor), **overrides)
    choice = {**choice, "augment": aug, "preset": "custom"}
    if method != "simclr":
        choice = {**choice, "method": method, "method_options": {}}
    warmup = round(budget.WARMUP_SHARE * steps * 128 / 2481, 3)  # 5 % of the run, as planned
    cfg = dataclasses.replace(
        base,
        **choice,
        epochs=10_000,
        max_steps=steps,
        monitor_every=0,
        checkpoint_every=every or 10**9,
        threads=threads,
        seed=seed,
        out=out,
    )
    cfg = dataclasses.replace(cfg, optim=dataclasses.replace(cfg.optim, warmup_epochs=warmup))
    return cfg, norm


def normalising(kind: str) -> None:
    """Make the trainer's view pipeline see normalised tiles (the search's stand-in for the
    product's own input normalisation)."""
    if kind == "none":
        return
    plain = views.ViewPipeline.__call__

    def call(self, images, generator, normalize=True):  # noqa: ANN001, ANN202
        x = normalise_tiles(images.permute(0, 2, 3, 1).cpu().numpy(), kind)
        return plain(self, torch.from_numpy(x).permute(0, 3, 1, 2), generator, normalize)

    views.ViewPipeline.__call__ = call


def run_trial(
    name: str, steps: int, seed: int, every: int = 0, method: str = "simclr", threads: int = 1
) -> dict:
    out = tempfile.mkdtemp(prefix="sslstudio-stain-")
    cfg, norm = trial_config(name, steps, seed, out, every, method, threads)
    normalising(norm)
    t0 = time.perf_counter()
    losses, run = [], None
    for ev in train(cfg):
        if isinstance(ev, StepLogged):
            losses.append(ev.loss)
            if ev.step % 100 == 0:
                print(f"{name} step {ev.step} loss {ev.loss:.3f}", flush=True)
        elif isinstance(ev, RunFinished):
            run = Path(ev.path).parent.parent
    train_s = time.perf_counter() - t0
    model, _, _ = load_method(run)
    result = protocol.report(model, random_init_method(cfg), "crc-he-subset", 32, norm)
    print(protocol.line(result))
    curve = {}  # the drift: kNN on both query sets at each kept checkpoint
    for ck in sorted((run / "checkpoints").glob("step_*")) if every else []:
        at = load_method(run, which=ck.name)[0]
        curve[ck.name] = protocol.knn_scores(at, "crc-he-subset", 32, norm)
        print(f"{name} {ck.name} {curve[ck.name]}", flush=True)
    return {
        "trial": name + ("" if method == "simclr" else f"-{method}"),
        "method": method,
        "curve": curve,
        "steps": steps,
        "seed": seed,
        "threads": threads,
        "normalise": norm,
        **result,
        "train_s": train_s,
        "first_loss": losses[0],
        "last_loss": losses[-1],
        "augment": dataclasses.asdict(cfg.augment),
    }


def table(paths: list[Path]) -> str:
    """The search's rows as a Markdown table (BENCHMARKS.md)."""
    head = (
        "| trial | input | steps | threads | val | shifted | random init val / shifted "
        "| colour val / shifted | command |\n|---|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for p in paths:
        r = json.loads(p.read_text())
        t, z, c = r["trained"], r["random_init"], r["colour_baseline"]
        lines.append(
            f"| {r['trial']} (seed {r['seed']}) | {r['normalise']} | {r['steps']} | {r['threads']} "
            f"| {t['val']:.3f} | {t['shifted']:.3f} | {z['val']:.3f} / {z['shifted']:.3f} "
            f"| {c['val']:.3f} / {c['shifted']:.3f} | `{r['command']}` |"
        )
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--trial", choices=sorted(TRIALS))
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--eval-every", type=int, default=0, help="also score a checkpoint every K steps"
    )
    ap.add_argument("--method", default="simclr", help="another method on the same views")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--list", action="store_true", help="print the trials and exit")
    ap.add_argument("--table", action="store_true", help="print the results so far as a table")
    args = ap.parse_args()
    if args.table:
        print(table(sorted(OUT.glob("stain-*.json"), key=lambda p: p.stat().st_mtime)))
        return 0
    if args.list or not args.trial:
        for k, (f, o, n) in TRIALS.items():
            print(f"{k:<16} jitter x{f:g} {o} normalise={n}")
        return 0
    torch.set_num_threads(args.threads)
    row = run_trial(args.trial, args.steps, args.seed, args.eval_every, args.method, args.threads)
    record.write(OUT / f"stain-{row['trial']}-{args.steps}-s{args.seed}.json", row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
