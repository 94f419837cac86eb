"""How long the GUI thread can stall: while scanning 10k images, and while training.

A 5 ms ``QTimer`` (precise) runs in the window's event loop and records the gap between its
ticks; a gap far above 5 ms means the GUI thread was busy (or starved of the GIL) that long,
so the window could not repaint or react. Target (issue 4): worst gap < 100 ms.

Phases, each in the real window (offscreen), driven through its own methods:
  startup   from the window's first paint (building it is timed apart) while the training
            engine (torch) loads in the background, then the imports torch does lazily at a
            run's first optimizer are warmed
  scan      open a generated folder of small PNGs (10,000 by default): background scan with
            progress, then the summary and the first visible thumbnails (1 s after the scan)
  page      switch to the Train page: its first layout and paint (six plots), then 0.5 s idle
  prepare   Start: the trainer scans and decodes the folder (Preparing events)
  train     a few dozen tiny_cnn SimCLR steps on the CPU (StepLogged, health checks, checkpoints)

    python bench/gui_latency.py                    # 10,000 images, 36 steps
    python bench/gui_latency.py --images 2000 --steps 24 --out /tmp/gui_latency.json

Runs, caches and settings go to a temporary SSLSTUDIO_HOME; the image folder is temporary too.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import record  # noqa: E402

TICK_MS = 5
TARGET_MS = 100.0


def make_folder(root: Path, n: int, size: int = 32) -> float:
    """``n`` random ``size`` px PNGs in 10 class folders; returns seconds taken."""
    import numpy as np
    from PIL import Image

    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    for i in range(n):
        d = root / f"class_{i % 10}"
        if i < 10:
            d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(
            d / f"img_{i:06d}.png"
        )
    return time.perf_counter() - t0


class StallMeter:
    """Gaps between the ticks of a 5 ms timer in the GUI thread, per named phase."""

    def __init__(self) -> None:
        from PySide6.QtCore import Qt, QTimer

        self.timer = QTimer()
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self._tick)
        self.phase = ""
        self.gaps: dict[str, list[float]] = {}
        self.started: dict[str, float] = {}
        self.ended: dict[str, float] = {}
        self.updates: dict[str, int] = {}
        self._last = 0.0

    def start(self, phase: str) -> None:
        now = time.perf_counter()
        if self.phase:
            self.ended[self.phase] = now
        self.phase = phase
        self.gaps.setdefault(phase, [])
        self.started[phase] = now
        self.updates.setdefault(phase, 0)
        self._last = now
        if not self.timer.isActive():
            self.timer.start()

    def stop(self) -> None:
        self.ended[self.phase] = time.perf_counter()
        self.timer.stop()
        self.phase = ""

    def count_update(self, *_: object) -> None:
        if self.phase:
            self.updates[self.phase] += 1

    def _tick(self) -> None:
        now = time.perf_counter()
        self.gaps[self.phase].append((now - self._last) * 1000)
        self._last = now

    def rows(self) -> list[dict[str, float | str | int]]:
        out = []
        for phase, gaps in self.gaps.items():
            duration = self.ended[phase] - self.started[phase]
            q = (
                statistics.quantiles(gaps, n=100)
                if len(gaps) >= 2
                else [max(gaps, default=0.0)] * 99
            )
            out.append(
                {
                    "phase": phase,
                    "seconds": round(duration, 2),
                    "ticks": len(gaps),
                    "worst_gap_ms": round(max(gaps, default=0.0), 1),
                    "p99_gap_ms": round(q[98], 1),
                    "median_gap_ms": round(statistics.median(gaps), 1) if gaps else 0.0,
                    "gaps_over_100ms": sum(g > TARGET_MS for g in gaps),
                    "ui_updates_per_s": round(self.updates[phase] / duration, 1)
                    if duration
                    else 0.0,
                }
            )
        return out


def run_until(done, timeout_s: float, what: str) -> None:  # noqa: ANN001
    """Spin a real event loop (not processEvents) until ``done()``."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    deadline = time.monotonic() + timeout_s
    poll = QTimer()
    poll.setInterval(20)
    poll.timeout.connect(lambda: (done() or time.monotonic() > deadline) and loop.quit())
    poll.start()
    loop.exec()
    poll.stop()
    if not done():
        raise TimeoutError(f"timed out waiting for {what}")


def measure(folder: Path, steps: int) -> tuple[list[dict], dict]:
    from sslstudio.gui import catalog

    catalog.preload()  # as run_app does, before anything else is imported
    from sslstudio.core.events import Preparing, RunStarted, StepLogged
    from sslstudio.gui.app import make_app
    from sslstudio.gui.main_window import MainWindow

    app = make_app()
    meter = StallMeter()
    # building and first painting the window is GUI-thread work by nature (nothing is on screen
    # to freeze yet): timed on its own; the stall meter starts once the window is up
    t_build = time.perf_counter()
    window = MainWindow()
    window.resize(1280, 800)
    window.show()
    app.processEvents()
    window_shown_s = time.perf_counter() - t_build
    print(
        f"window built and shown in {window_shown_s * 1000:.0f} ms (the engine loading meanwhile)"
    )
    meter.start("startup")
    run_until(
        lambda: window.catalog is not None and catalog.warmed.is_set(), 300, "the training engine"
    )
    meter.stop()

    window.data_page.progress.valueChanged.connect(meter.count_update)
    meter.start("scan")
    window.open_folder(folder)
    run_until(lambda: window.data_page.index is not None, 600, "the scan")
    scanned = time.perf_counter()
    run_until(lambda: time.perf_counter() - scanned > 1.0, 5, "thumbnails")
    meter.stop()
    images = len(window.data_page.index.images)

    counts = {"preparing": 0, "steps": 0}

    def on_event(ev: object) -> None:
        meter.count_update()
        if isinstance(ev, Preparing):
            counts["preparing"] += 1
        elif isinstance(ev, RunStarted):
            meter.start("train")
        elif isinstance(ev, StepLogged):
            counts["steps"] += 1

    window.controller.event.connect(on_event)
    cfg = dataclasses.replace(
        window.config_model.config,
        method="simclr",
        method_options={},
        backbone="tiny_cnn",
        image_size=32,
        batch_size=32,
        epochs=1,
        max_steps=steps,
        monitor_every=12,
        checkpoint_every=12,
        device="cpu",
    )
    window.load_config(cfg)
    # switching to the Train page lays out and paints its six plots for the first time: GUI
    # work by nature, measured as its own phase so that "prepare" is the engine's alone
    meter.start("page")
    window.show_page("Train")
    shown = time.perf_counter()
    run_until(lambda: time.perf_counter() - shown > 0.5, 5, "the Train page")
    meter.start("prepare")
    window.start_run()
    run_until(lambda: not window.controller.is_running(), 900, "training")
    meter.stop()
    window.close()
    app.processEvents()
    return meter.rows(), {
        "images_scanned": images,
        "preparing_events": counts["preparing"],
        "steps": counts["steps"],
        "threads": window.method_page.threads(),
        "window_shown_s": window_shown_s,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=10_000)
    p.add_argument("--steps", type=int, default=36)
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "gui_latency.json"))
    args = p.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    tmp = Path(tempfile.mkdtemp(prefix="sslstudio-latency-"))
    os.environ["SSLSTUDIO_HOME"] = str(tmp / "home")
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    try:
        made = make_folder(tmp / "images", args.images)
        print(f"generated {args.images:,} PNGs in {made:.1f} s")
        rows, info = measure(tmp / "images", args.steps)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(
        f"\nGUI thread stalls (a {TICK_MS} ms timer; gap = time between ticks; target worst < "
        f"{TARGET_MS:.0f} ms)"
    )
    head = (
        f"{'phase':<9} {'seconds':>8} {'ticks':>7} {'median':>7} {'p99':>7} {'worst':>7} "
        f"{'>100ms':>7} {'updates/s':>10}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['phase']:<9} {r['seconds']:>8.2f} {r['ticks']:>7} {r['median_gap_ms']:>7.1f} "
            f"{r['p99_gap_ms']:>7.1f} "
            f"{r['worst_gap_ms']:>7.1f} {r['gaps_over_100ms']:>7} {r['ui_updates_per_s']:>10.1f}"
        )
    print(
        f"\n{info['images_scanned']:,} images scanned; {info['preparing_events']} Preparing "
        "events; "
        f"{info['steps']} steps on {info['threads']} torch thread(s)"
    )

    import PySide6
    import torch

    result = {
        "environment": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "pyside6": PySide6.__version__,
            "load_average_before": load_before,
            "load_average_after": os.getloadavg() if hasattr(os, "getloadavg") else None,
        },
        "tick_ms": TICK_MS,
        "target_worst_ms": TARGET_MS,
        "images": args.images,
        "steps": args.steps,
        "phases": rows,
        **info,
    }
    record.write(Path(args.out), result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
