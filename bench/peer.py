"""Our SimCLR beside lightly's, side by side in one run: throughput and kNN top-1.

The peer runs in its own environment (``bench/.peer-venv``, made here on first use with
``pip install lightly torch==2.14.1 torchvision==0.29.1 safetensors``; nothing is installed into
the product's environment). For each data set both trainings start together, one core each,
with the same data, backbone (torchvision ResNet-18, standard stem), image size, batch and
wall-clock budget: lightly's SimCLR example as written (``bench/peer_lightly.py``) and the
studio's SimCLR with its defaults (AdamW 2e-3 per 256, τ 0.2, crops of 25-100 %, the
domain preset) under ``time_budget_s``. Both backbones are then evaluated by the studio's kNN
(k=200, τ=0.1, ``train/`` as memory, ``val/`` as queries) beside the same network at random
initialisation.

    python bench/peer.py --minutes 4
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import record  # noqa: E402
from bench.methods import DATA, SETS, config  # noqa: E402

PEER_ENV = ROOT / "bench" / ".peer-venv"
PEER_PACKAGES = ["lightly", "torch==2.14.1", "torchvision==0.29.1", "safetensors"]


def peer_python(env: Path) -> Path:
    """The peer environment's interpreter, created on first use."""
    py = env / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    if not py.exists():
        print(f"creating the peer environment {env} (lightly from PyPI)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(env)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", *PEER_PACKAGES], check=True)
    return py


def ours(data: str, seconds: float, out: Path) -> None:
    """The studio's SimCLR for ``seconds`` of wall-clock, one thread (run as a subprocess)."""
    import torch

    from sslstudio.core.events import RunFinished, StepLogged
    from sslstudio.core.train.trainer import train

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    cal = json.loads((ROOT / "bench" / "results" / "methods" / "calibration.json").read_text())
    steps = int(seconds / cal[f"simclr@{data}"])
    cfg = dataclasses.replace(
        config("simclr", data, 0, steps, tempfile.mkdtemp(prefix="sslstudio-peer-")),
        time_budget_s=seconds,
    )
    n, t_first, t_last, losses, run, batch = 0, None, None, [], None, cfg.batch_size
    for ev in train(cfg):
        if isinstance(ev, StepLogged):
            t_last = time.perf_counter()
            t_first = (
                t_first or t_last
            )  # the first step's end: throughput counts the steps after it
            n += 1
            losses.append(ev.loss)
        elif isinstance(ev, RunFinished):
            run = str(Path(ev.path).parent.parent)
    train_s = t_last - t_first
    out.write_text(
        json.dumps(
            {
                "steps": n,
                "images": n * batch,
                "train_s": train_s,
                "images_per_s": (n - 1) * batch / train_s,
                "wall_s": time.perf_counter() - t0,
                "first_loss": losses[0],
                "last_loss": losses[-1],
                "run": run,
            }
        )
    )


def evaluate(data: str, run: str, peer_weights: str) -> dict[str, float]:
    from sslstudio.core.explore.embed import knn_eval, load_method, random_init_method

    size = SETS[data][0]
    train_dir, val_dir = DATA / data / "train", DATA / data / "val"
    method, cfg, _ = load_method(run)
    peer = random_init_method(dataclasses.replace(cfg, weights=peer_weights))
    return {
        "ours": knn_eval(method, train_dir, val_dir, size),
        "peer": knn_eval(peer, train_dir, val_dir, size),
        "random_init": knn_eval(random_init_method(cfg), train_dir, val_dir, size),
    }


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--minutes", type=float, default=4.0)
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--peer-env", type=Path, default=PEER_ENV)
    ap.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "peer.json")
    ap.add_argument("--ours", help=argparse.SUPPRESS)
    ap.add_argument("--seconds", type=float, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.ours:
        ours(args.ours, args.seconds, args.out)
        return 0
    py = peer_python(args.peer_env)
    seconds = args.minutes * 60
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    rows = []
    for data in args.sets.split(","):
        size = SETS[data][0]
        tmp = Path(tempfile.mkdtemp(prefix="sslstudio-peer-"))
        mine = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--ours",
                data,
                "--seconds",
                str(seconds),
                "--out",
                str(tmp / "ours.json"),
            ],
            env=env,
        )
        theirs = subprocess.run(
            [
                str(py),
                str(ROOT / "bench" / "peer_lightly.py"),
                "--data",
                str(DATA / data / "train"),
                "--size",
                str(size),
                "--batch",
                "128",
                "--seconds",
                str(seconds),
                "--out",
                str(tmp / "peer.safetensors"),
            ],
            env=env,
            capture_output=True,
            text=True,
        )
        if mine.wait() != 0 or theirs.returncode != 0:
            print(theirs.stderr[-2000:])
            return 1
        o = json.loads((tmp / "ours.json").read_text())
        p = json.loads(theirs.stdout.strip().splitlines()[-1])
        knn = evaluate(data, o["run"], str(tmp / "peer.safetensors"))
        rows.append(
            {
                "data": data,
                "size": size,
                "ours": o,
                "peer": p,
                "knn": knn,
                "throughput_ratio": o["images_per_s"] / p["images_per_s"],
                "gain_ratio": (knn["ours"] - knn["random_init"])
                / max(1e-9, knn["peer"] - knn["random_init"]),
            }
        )
        r = rows[-1]
        print(
            f"{data}: ours {o['images_per_s']:.0f} img/s, kNN {knn['ours']:.3f}; lightly "
            f"{p['images_per_s']:.0f} img/s, "
            f"kNN {knn['peer']:.3f}; random init {knn['random_init']:.3f}",
            flush=True,
        )
    print(
        "\n| data | px | run | steps | img/s | wall s | kNN top-1 | vs random init "
        "|\n|---|---|---|---|---|---|---|---|"
    )
    for r in rows:
        k = r["knn"]
        for who in ("ours", "peer"):
            name = "SSL Studio SimCLR" if who == "ours" else "lightly SimCLR (its example)"
            x = r[who]
            print(
                f"| {r['data']} | {r['size']} | {name} | {x['steps']} | {x['images_per_s']:.1f} | "
                f"{x['wall_s']:.0f} "
                f"| {k[who]:.3f} | {k[who] - k['random_init']:+.3f} |"
            )
        print(
            f"| {r['data']} | {r['size']} | ratio ours / lightly | | "
            f"**{r['throughput_ratio']:.2f}×** | | | "
            f"gain {r['gain_ratio']:.1f}× |"
        )
    record.write(args.json, {"minutes": args.minutes, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
