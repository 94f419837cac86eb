"""Steps a timed CPU run takes with the thread chooser vs fixed thread counts, quiet and busy.

A timed run (``time_budget_s``, as budget mode plans it) whose thread count is left open
trains with the count that is fastest now (core/train/threads.py). Here the same run (SimCLR,
ResNet-18, 32 px, batch 128 on ``crc-he-subset/train``, no probes) trains for ``--seconds`` of
wall time with 1 thread, with all of torch's threads, and with the chooser; first on the
machine as it is, then with one pure-Python busy loop beside it (issue 23: 59 steps at 2
threads vs 114 at 1 under that load). Reported: steps per trial, the chooser's steps as a share
of the best fixed count's (target >= 90 % busy; quiet: no fewer than all threads, the old
default), and the counts it chose. The machine's load average is recorded with each trial: on a
machine other people share, "quiet" only means no busy loop of ours.

    python bench/threads.py                 # 60 s per trial, 6 trials
    python bench/threads.py --seconds 30 --repeats 2
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import record  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "crc-he-subset" / "train"
OUT = ROOT / "bench" / "results" / "threads.json"
BUSY = "while True: pass"


def trial(threads: int, seconds: float, out: Path, batch: int = 128) -> dict:
    """One timed run: steps taken, and the chooser's notices."""
    import tempfile

    import torch

    from sslstudio.config import OptimConfig, RunConfig
    from sslstudio.core.events import PlanRevised, StepLogged
    from sslstudio.core.train.trainer import train
    from sslstudio.core.transforms.presets import preset

    most = torch.get_num_threads()
    cfg = RunConfig(
        data_root=str(DATA),
        method="simclr",
        backbone="resnet18",
        small_stem="off",
        image_size=32,
        preset="histopathology",
        augment=dataclasses.replace(preset("histopathology", 32), crop_scale_min=0.25),
        optim=OptimConfig(optimizer="adamw", lr=2e-3),
        batch_size=batch,
        epochs=10**4,
        monitor_every=0,
        checkpoint_every=10**6,
        time_budget_s=3600.0,  # a timed run (the chooser is on); the trial stops it itself
        threads=threads,
        out=tempfile.mkdtemp(dir=out),
    )
    steps, notices, first = 0, [], None
    load0, stop = os.getloadavg()[0], threading.Event()
    for ev in train(cfg, stop=stop):
        if isinstance(ev, StepLogged):
            # counted from the end of the first step: start-up (scan, cache) is not the threads'
            if first is None:
                first = time.perf_counter()
            elif time.perf_counter() - first <= seconds:
                steps += 1
            else:
                stop.set()
        elif isinstance(ev, PlanRevised) and "CPU threads" in ev.reason:
            notices.append(f"step {ev.step}: {ev.reason}")
    return {
        "threads": threads or "chosen",
        "most": most,
        "steps": steps,
        "window_s": seconds,
        "load_avg": [load0, os.getloadavg()[0]],
        "notices": notices,
    }


def main(argv: list[str] | None = None) -> int:
    import shutil
    import tempfile

    import torch

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--json", type=Path, default=OUT)
    args = ap.parse_args(argv)
    most = torch.get_num_threads()
    modes = (1, most, 0)  # fixed 1, fixed all (the old default), chosen
    tmp = Path(tempfile.mkdtemp(prefix="sslstudio-threads-"))
    rows = []
    try:
        for load in ("as is", "one busy loop"):
            busy = None
            if load != "as is":
                busy = subprocess.Popen([sys.executable, "-c", BUSY])
            try:
                for rep in range(args.repeats):
                    for threads in modes:
                        torch.set_num_threads(most)  # a fixed-count trial leaves its own behind
                        r = trial(threads, args.seconds, tmp, args.batch)
                        r.update(load=load, repeat=rep)
                        rows.append(r)
                        print(json.dumps(r), flush=True)
            finally:
                if busy is not None:
                    busy.kill()
                    busy.wait()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    summary = {}
    print(f"\n{'load':<14} {'1 thread':>9} {f'{most} threads':>10} {'chosen':>7} {'vs best':>8}")
    for load in ("as is", "one busy loop"):
        steps = {
            m: sum(r["steps"] for r in rows if r["load"] == load and r["threads"] == m)
            for m in (1, most, "chosen")
        }
        best = max(steps[1], steps[most])
        share = steps["chosen"] / best if best else float("nan")
        summary[load] = {**{str(k): v for k, v in steps.items()}, "chosen_vs_best": share}
        print(f"{load:<14} {steps[1]:>9} {steps[most]:>10} {steps['chosen']:>7} {share:>8.0%}")
    record.write(
        args.json,
        {
            "rows": rows,
            "summary": summary,
            "seconds": args.seconds,
            "batch": args.batch,
            "load_avg_end": os.getloadavg(),
            "cpus": os.cpu_count(),
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
