"""Big folders: scan time, re-open time and peak memory for 100k and 1M small image files.

Generates the folders once (tiny valid PNGs, 1,000 per subfolder, 10 class folders) under
``--where`` and reuses them. Every measurement runs in a fresh Python process, so peak RSS is
that of the operation alone (the interpreter, numpy and the package are included; their cost
is printed as "imports"). Three operations per size:

- ``scan``: list the folder and type-check every file by its magic bytes, reading headers for
  the first ``HEADER_LIMIT`` files (the default), and store the index; ``scan-cold`` the same
  after dropping the page cache (root only), as when the folder was not read since boot;
- ``re-open``: the stored index, after checking every folder's modification time;
- ``changed``: one file added to one subfolder, then opened again: only that subfolder is
  listed and its files type-checked; every other folder is only stat-ed and keeps the stored
  entries and verdicts (``changed-cold``: cold cache);
- ``headers for all`` (100k only, the peer): the scan as it was before, reading every header.

Targets (issue 8): 1M files listed in < 60 s, re-open < 2 s, < 1 GB RSS; (issue 22) a changed
1M folder re-opened in < 2 s warm.

    python bench/scale.py [--sizes 100000 1000000] [--where /tmp/sslstudio-scale] [--ops ...]

``--peer DIR`` (a checkout of other code, e.g. ``git worktree add /tmp/peer REV``) runs every
``changed`` operation with that code too, interleaved, and prints the ratio of medians.
``--ops`` runs only some operations (``--ops scan reopen changed``: no cold ones, which drop
the whole machine's page cache).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import record  # noqa: E402

PER_FOLDER = 1000

CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from sslstudio.core.data.indexstore import open_index
from sslstudio.core.data.scan import HEADER_LIMIT
imports_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
op, root, cache = sys.argv[1], sys.argv[2], sys.argv[3]
start = time.perf_counter()
if op in ("scan", "scan-cold"):
    index = open_index(root, __import__("pathlib").Path(cache), rescan=True)
elif op in ("reopen", "changed", "changed-cold"):
    index = open_index(root, __import__("pathlib").Path(cache))
else:  # every header read, nothing stored: the scan before lazy headers
    index = open_index(root, None, header_limit=10**12)
seconds = time.perf_counter() - start
print(json.dumps({
    "seconds": seconds,
    "images": len(index.images),
    "unread": index.unread,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "imports_rss_mb": imports_rss / 1024,
}))
"""


def _png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (120, 60, 200)).save(buf, "PNG")
    return buf.getvalue()


def generate(root: Path, n: int) -> float:
    """The folder of ``n`` files (reused when complete); returns seconds spent writing."""
    marker = root / ".complete"
    if marker.exists() and marker.read_text() == str(n):
        return 0.0
    start, data = time.perf_counter(), _png()
    for k in range(0, n, PER_FOLDER):
        folder = root / f"class{(k // PER_FOLDER) % 10}" / f"slide{k // PER_FOLDER:05d}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(k, min(n, k + PER_FOLDER)):
            (folder / f"tile{i:07d}.png").write_bytes(data)
    marker.write_text(str(n))
    return time.perf_counter() - start


def drop_page_cache() -> bool:
    """Cold reads where the machine lets us (root on Linux); False otherwise."""
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def measure(op: str, root: Path, cache: Path, code: Path = ROOT) -> dict:
    env = {**os.environ, "PYTHONPATH": str(code)}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, op, str(root), str(cache)],
        capture_output=True,
        text=True,
        env=env,
        cwd=code,  # python -c puts the working folder first on the path
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _codes(op: str, peer: Path | None) -> list[Path]:
    return [ROOT, peer] if peer is not None and op.startswith("changed") else [ROOT]


def _ratio(rows: list[dict], n: int) -> None:
    """Median of ours against the peer's for every operation both ran on ``n`` files."""
    for op in sorted({r["op"] for r in rows if r["files"] == n and r["op"].endswith("(peer)")}):
        ours = [r["seconds"] for r in rows if r["files"] == n and r["op"] == op[: -len(" (peer)")]]
        theirs = [r["seconds"] for r in rows if r["files"] == n and r["op"] == op]
        a, b = sorted(ours)[len(ours) // 2], sorted(theirs)[len(theirs) // 2]
        print(
            f"{n:,} {op[: -len(' (peer)')]}: {a:.2f} s against the peer's {b:.2f} s ({b / a:.1f}x)"
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--where", type=Path, default=Path("/tmp/sslstudio-scale"))
    ap.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "scale.json")
    ap.add_argument("--ops", nargs="+", default=None, help="only these operations, in order")
    ap.add_argument(
        "--peer",
        type=Path,
        default=None,
        help="a checkout of other code (git worktree add /tmp/peer REV): each 'changed' is "
        "then also run with it, interleaved, and the ratio of medians printed",
    )
    args = ap.parse_args()
    rows = []
    for n in args.sizes:
        root, cache = args.where / f"{n}", args.where / f"cache-{n}"
        written = generate(root, n)
        if written:
            print(f"wrote {n:,} files in {written:.0f} s", flush=True)
        ops = ["scan-cold", "scan", "reopen", "changed-cold", "changed"]
        ops += ["headers-all"] if n <= 100_000 else []
        todo = [(op, code) for op in args.ops or ops for code in _codes(op, args.peer)]
        for op, code in todo:
            if op.startswith("changed"):  # one new file in one of the n/1000 subfolders
                new = f"new-{op}-{time.time_ns()}.png"  # a new name: every run is a change
                (root / "class0" / "slide00000" / new).write_bytes(_png())
            cold = op.endswith("-cold") and drop_page_cache()
            if op.endswith("-cold") and not cold:
                continue  # the page cache cannot be dropped here (not root)
            r = measure(op, root, cache, code)
            name = op if code == ROOT else f"{op} (peer)"
            r.update(files=n, op=name, cold=cold, code=str(code))
            rows.append(r)
            print(
                f"{n:>9,}  {name:<16} {r['seconds']:7.2f} s  {r['peak_rss_mb']:6.0f} MB peak "
                f"(imports {r['imports_rss_mb']:.0f} MB)  {r['images']:,} images, "
                f"{r['unread']:,} headers unread{'  [cold page cache]' if cold else ''}",
                flush=True,
            )
        _ratio(rows, n)
    peers = {(r["files"], r["op"]): r["seconds"] for r in rows}
    for n in args.sizes:
        if (n, "headers-all") in peers:
            ratio = peers[(n, "headers-all")] / peers[(n, "scan")]
            print(f"{n:,}: the scan is {ratio:.1f}x faster than reading every header")
    record.write(args.json, {"host": platform.node(), "cpus": os.cpu_count(), "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
