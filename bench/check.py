"""Does a small check folder tell the truth about new slides? (issue 23, the verdict)

For every kept checkpoint of the given H&E runs (trained weights, and blended 50/50 with the
run's step-0 weights, as ``init_blend`` reads them), the product's check
(``sslstudio.core.train.check``: a labelled sample of ``crc-he-shifted``, in that folder's class
mix, answered by 1,000 labelled ``crc-he-subset/train`` images, weighted kNN k=200, paired with
step 0, two bootstrap standard errors of noise) is compared in sign with the truth: the
benchmark's kNN (k=200, memory the whole training split) on the **rest** of ``crc-he-shifted``
(the same class mix), trained minus random init. Beside it, the design that was rejected:
leave-one-out kNN inside the check sample alone.

    python bench/check.py /path/to/run1 /path/to/run2 --per-class 20 50 100 --draws 3

``--per-class N``: about N per class, in the folder's class mix. Prints a table per check size
(decided / wrong in sign) and writes JSON.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import protocol, record  # noqa: E402
from sslstudio.core.data.cache import build_cache  # noqa: E402
from sslstudio.core.data.indexstore import open_index  # noqa: E402
from sslstudio.core.explore.embed import load_method, random_init_method  # noqa: E402
from sslstudio.core.maths.knn import knn_accuracy  # noqa: E402
from sslstudio.core.train import check as ck  # noqa: E402
from sslstudio.core.train import checkpoints as ckpt  # noqa: E402
from sslstudio.core.train.verdict import judge, paired_noise  # noqa: E402
from sslstudio.paths import cache_dir  # noqa: E402

SIZE = 32
LOO_K = 20  # leave-one-out inside a check sample of 100-500 images


def _cache(folder: Path):
    index = open_index(str(folder), cache_dir())
    return build_cache(index, SIZE, cache_dir())


def _init(run: Path, cfg):
    if (run / "checkpoints" / "init").exists():
        return load_method(run, which="init", device=torch.device("cpu"))[0]
    return random_init_method(cfg)  # the seeded network the run started from


def _readings(run: Path, name: str, init) -> dict:
    state, _, _ = ckpt.load_checkpoint(run / "checkpoints" / name)
    trained = copy.deepcopy(init)
    ckpt.load_model_state(trained, state, run / "checkpoints" / name)
    blended = copy.deepcopy(init)
    blended.load_state_dict(ckpt.blend_with_init(state, init.state_dict(), 0.5))
    return {"trained": trained.eval(), "blended": blended.eval()}


def _loo(feats: torch.Tensor, y: np.ndarray, n_cls: int) -> np.ndarray:
    f = torch.nn.functional.normalize(feats, dim=1)
    sim = f @ f.T
    sim.fill_diagonal_(-2.0)
    top, ix = sim.topk(min(LOO_K, len(f) - 1), dim=1)
    votes = torch.zeros(len(f), n_cls).scatter_add_(
        1, torch.from_numpy(y)[ix], (top / ck.TEMPERATURE).exp()
    )
    return (votes.argmax(1).numpy() == y).astype(float)


class Bench:
    def __init__(self, per_class: list[int], draws: int) -> None:
        root = protocol._root("crc-he-subset")
        self.train_dir, self.new_dir = root / "train", root.parent / protocol.SHIFTED
        self.train, self.new = _cache(self.train_dir), _cache(self.new_dir)
        self.y_train, self.y_new = self.train.labels(), self.new.labels()
        self.n_cls = int(self.y_train.max()) + 1
        rng = np.random.default_rng(0)
        self.sets = {}
        shares = np.bincount(self.y_new) / len(self.y_new)
        for per in per_class:  # ``per`` images per class on average, in the folder's class mix:
            for d in range(draws):  # the rest (the truth) keeps the same mix
                rows = np.sort(
                    np.concatenate(
                        [
                            rng.choice(
                                np.flatnonzero(self.y_new == c),
                                round(per * self.n_cls * shares[c]),
                                replace=False,
                            )
                            for c in range(self.n_cls)
                        ]
                    )
                )
                memory = np.sort(rng.permutation(len(self.y_train))[: ck.MEMORY])
                self.sets[(per, d)] = ck.CheckSet(self.new, rows, self.y_new[rows], memory, (), ())

    def answers(self, method) -> dict:
        """Per check set: (truth kNN on the rest, check hits, leave-one-out hits)."""
        mem = torch.from_numpy(protocol.features(method, self.train_dir, SIZE))
        q = torch.from_numpy(protocol.features(method, self.new_dir, SIZE))
        out = {}
        for key, cs in self.sets.items():
            rest = np.setdiff1d(np.arange(len(self.y_new)), cs.rows)
            truth = knn_accuracy(
                mem,
                torch.from_numpy(self.y_train),
                q[rest],
                torch.from_numpy(self.y_new[rest]),
                k=200,
                temperature=0.1,
            )
            # the product's kNN on the same features (its own extraction checked in verify)
            got = ck.answer(
                mem[cs.memory_rows], self.y_train[cs.memory_rows], q[cs.rows], cs.labels
            )
            out[key] = (truth, got, _loo(q[cs.rows], cs.labels, self.n_cls))
        return out


def verify(bench: Bench, method) -> None:
    """The product's own path (features from the caches, then kNN) gives the answers above."""
    cs = next(iter(bench.sets.values()))
    mem = torch.from_numpy(protocol.features(method, bench.train_dir, SIZE))
    q = torch.from_numpy(protocol.features(method, bench.new_dir, SIZE))
    direct = ck.hits(method, cs, bench.train, bench.y_train, SIZE, torch.device("cpu"))
    via = ck.answer(mem[cs.memory_rows], bench.y_train[cs.memory_rows], q[cs.rows], cs.labels)
    if (direct != via).mean() > 0.01:  # float order of the features may flip a near tie
        raise SystemExit(f"the bench's kNN differs from the product's: {(direct != via).mean()}")


def verdict(hits: np.ndarray, ref: np.ndarray) -> tuple[float, float, int]:
    noise = paired_noise(hits, ref)
    return float(hits.mean() - ref.mean()), noise, judge(hits.mean(), ref.mean(), noise)


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("runs", nargs="+", help="run folders trained on crc-he-subset/train")
    ap.add_argument("--per-class", type=int, nargs="+", default=[20, 50, 100])
    ap.add_argument("--draws", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=str(ROOT / "bench" / "results" / "check.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    bench = Bench(args.per_class, args.draws)
    rows = []
    for run in map(Path, args.runs):
        method, cfg, _ = load_method(run, which="final", device=torch.device("cpu"))
        init = _init(run, cfg)
        verify(bench, method)
        base = bench.answers(init.eval())
        names = sorted(
            p.name for p in (run / "checkpoints").iterdir() if p.name.startswith("step_")
        )
        for name in [*names, "final"]:
            for reading, m in _readings(run, name, init).items():
                got = bench.answers(m)
                for (per, d), (truth, hits, loo) in got.items():
                    t0, ref, loo_ref = base[(per, d)]
                    gap, noise, sign = verdict(hits, ref)
                    loo_gap, loo_noise, loo_sign = verdict(loo, loo_ref)
                    rows.append(
                        {
                            "run": run.name,
                            "checkpoint": name,
                            "reading": reading,
                            "per_class": per,
                            "check_images": len(bench.sets[(per, d)].rows),
                            "draw": d,
                            "truth_gap": round(truth - t0, 4),
                            "check_gap": round(gap, 4),
                            "check_noise": round(noise, 4),
                            "check_sign": sign,
                            "loo_gap": round(loo_gap, 4),
                            "loo_noise": round(loo_noise, 4),
                            "loo_sign": loo_sign,
                        }
                    )
                print(f"{run.name} {name} {reading}: truth {truth - t0:+.3f}", flush=True)
    print(table(rows))
    record.write(Path(args.json), {"rows": rows, "summary": summary(rows)})
    return 0


def _count(rows: list[dict], key: str) -> dict:
    decided = [r for r in rows if r[key] != 0]
    wrong = [r for r in decided if np.sign(r["truth_gap"]) != r[key]]
    return {"n": len(rows), "decided": len(decided), "wrong": len(wrong)}


def summary(rows: list[dict]) -> dict:
    out = {}
    for per in sorted({r["per_class"] for r in rows}):
        mine = [r for r in rows if r["per_class"] == per]
        out[str(per)] = {
            "check": _count(mine, "check_sign"),
            "leave_one_out": _count(mine, "loo_sign"),
            "mean_check_noise": round(float(np.mean([r["check_noise"] for r in mine])), 4),
        }
    return out


def table(rows: list[dict]) -> str:
    lines = [
        "| check images | verdicts | check: decided | check: wrong in sign | noise (mean) "
        "| leave-one-out: decided | leave-one-out: wrong |",
        "|---|---|---|---|---|---|---|",
    ]
    for per, s in summary(rows).items():  # noqa: B007
        c, loo = s["check"], s["leave_one_out"]
        n_img = next(r["check_images"] for r in rows if r["per_class"] == int(per))
        lines.append(
            f"| {n_img} (~{per} per class) | {c['n']} | {c['decided']} | {c['wrong']} "
            f"| ±{s['mean_check_noise']:.3f} | {loo['decided']} | {loo['wrong']} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
