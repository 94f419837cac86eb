"""How a run's state reads in the Train page: preparing progress, device, time left."""

from __future__ import annotations

import math
import re

from sslstudio.core.events import Preparing

STAGE_TEXT = {"scan": "Reading images…", "decode": "Decoding…"}


def format_preparing(ev: Preparing) -> str:
    """'Reading images… 1,234 / 10,000', or without the total while it is unknown."""
    what = STAGE_TEXT.get(ev.stage, f"{ev.stage.capitalize()}…")
    count = f"{ev.done:,} / {ev.total:,}" if ev.total > 0 else f"{ev.done:,}" if ev.done else ""
    return f"{what} {count}".rstrip()


def format_device(text: str) -> str:
    """The trainer's 'cpu (1 threads)' as 'CPU, 1 thread'; other devices as they come."""
    m = re.fullmatch(r"cpu \((\d+) threads?\)", text)
    if m:
        n = int(m.group(1))
        return f"CPU, {n} thread{'s' if n != 1 else ''}"
    return text


def format_eta(seconds: float) -> str:
    if not math.isfinite(seconds) or seconds < 0:
        return "–"
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
