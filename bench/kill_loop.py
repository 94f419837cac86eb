"""Kill loop: SIGKILL a real training process at random moments, resume, compare with a straight
run.

Each round starts tests/reliability/kill_child.py (resuming the run after the first), waits
for its RunStarted, sleeps a random time and SIGKILLs it; after ``--kills`` kills the run is
resumed to the end. Reported: kills survived (every resume started and the run completed),
steps redone (logged before a kill but past the checkpoint resumed from), metrics-log gaps and
duplicates, and the largest absolute difference between the resumed and the straight run's
final weights (0 means bit-identical).

    python bench/kill_loop.py                      # 12 kills, writes bench/results/kill_loop.json
    python bench/kill_loop.py --kills 20 --seed 3
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import record  # noqa: E402
from sslstudio.core.train import checkpoints as ckpt  # noqa: E402
from sslstudio.core.train.runs import read_metrics  # noqa: E402
from tests.reliability.kill_child import (  # noqa: E402
    sigkill,
    start_child,
    wait_marker,
    write_config,
)
from tests.shapes import make_shapes_folder, tiny_config  # noqa: E402


def _steps(run: Path) -> list[dict]:
    return [r for r in read_metrics(run) if r["kind"] == "step"]


def _finish(cfg_path: Path, run: Path | None, marker: Path) -> float:
    t0 = time.perf_counter()
    proc = start_child(cfg_path, run, "", marker)
    if proc.wait(900) != 0:
        raise SystemExit(marker.with_name(marker.name + ".log").read_text())
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--json", default=str(ROOT / "bench" / "results" / "kill_loop.json"))
    args = ap.parse_args()
    rng = random.Random(args.seed)
    base = Path(tempfile.mkdtemp(prefix="kill-loop-"))
    os.environ["SSLSTUDIO_HOME"] = str(base / "home")  # the children inherit it
    folder = make_shapes_folder(base / "images", per_class=16, size=32, shapes=("circle", "square"))
    # 32 images, batch 8: 4 steps an epoch; a checkpoint every 3 steps (not on epoch ends)
    cfg = tiny_config(
        folder,
        base / "run",
        epochs=args.epochs,
        checkpoint_every=3,
        monitor_every=0,
        image_size=32,
        deterministic=True,
    )
    straight_cfg = write_config(
        tiny_config(
            folder,
            base / "straight",
            epochs=args.epochs,
            checkpoint_every=3,
            monitor_every=0,
            image_size=32,
            deterministic=True,
        ),
        base / "straight.json",
    )
    cfg_path = write_config(cfg, base / "cfg.json")
    marker = base / "marker"
    straight_s = _finish(straight_cfg, None, marker)
    steps = _steps(base / "straight")
    total = len(steps)
    step_s = statistics.median(8 / r["images_per_s"] for r in steps)

    rows, run = [], base / "run"
    while len(rows) < args.kills:
        resume = run if (run / "config.json").exists() else None
        start = ckpt.latest_good(run)[0].step if resume and ckpt.latest_good(run)[0] else 0
        proc = start_child(cfg_path, resume, "started", marker)
        if not wait_marker(proc, marker):
            raise SystemExit(f"child failed to start: {proc.returncode}")
        delay = rng.uniform(0.0, 6 * step_s)  # within the next ~6 steps
        time.sleep(delay)
        if proc.poll() is not None:  # finished before the kill: start over is not needed
            break
        sigkill(proc)
        logged = _steps(run)
        last = max((r["step"] for r in logged), default=-1)
        found, damaged = ckpt.latest_good(run)
        saved = found.step if found else 0
        stray = len(list((run / "checkpoints").glob(".tmp-*")))
        rows.append(
            {
                "kill": len(rows) + 1,
                "delay_ms": round(delay * 1000, 1),
                "resumed_from": start,
                "last_logged": last,
                "checkpoint": saved,
                "redone": max(0, last + 1 - saved),
                "stray_temp": stray,
                "damaged": len(damaged),
            }
        )
    _finish(cfg_path, run, marker)

    final = _steps(run)
    logged = [r["step"] for r in final]
    a = ckpt.load_checkpoint(base / "straight" / "checkpoints" / "final")[0]
    b = ckpt.load_checkpoint(run / "checkpoints" / "final")[0]
    diff = max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].numel())
    same_losses = [r["loss"] for r in final] == [r["loss"] for r in steps]
    result = {
        "python": platform.python_version(),
        "total_steps": total,
        "step_ms": round(step_s * 1000, 2),
        "straight_run_s": round(straight_s, 1),
        "kills": len(rows),
        "kills_survived": len(rows) if logged == list(range(total)) else 0,
        "steps_redone": sum(r["redone"] for r in rows),
        "log_gaps": len(set(range(total)) - set(logged)),
        "log_duplicates": len(logged) - len(set(logged)),
        "losses_identical": same_losses,
        "max_abs_weight_diff": diff,
        "weights_identical": diff == 0.0 and a.keys() == b.keys(),
        "rounds": rows,
    }
    print(
        f"{'kill':>4} {'delay ms':>9} {'from':>5} {'logged':>7} {'ckpt':>5} {'redone':>7} "
        f"{'tmp':>4}"
    )
    for r in rows:
        print(
            f"{r['kill']:>4} {r['delay_ms']:>9} {r['resumed_from']:>5} {r['last_logged']:>7} "
            f"{r['checkpoint']:>5} {r['redone']:>7} {r['stray_temp']:>4}"
        )
    for key in (
        "total_steps",
        "kills",
        "kills_survived",
        "steps_redone",
        "log_gaps",
        "log_duplicates",
        "losses_identical",
        "max_abs_weight_diff",
        "weights_identical",
    ):
        print(f"{key:>20}: {result[key]}")
    record.write(Path(args.json), result)
    return 0 if result["weights_identical"] and result["kills_survived"] == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
