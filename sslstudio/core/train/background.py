"""Blocking preparation work (scan, decode) run beside a generator that keeps yielding events."""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator
from typing import Any

from sslstudio.core.events import Preparing


def in_background(
    stage: str, work: Callable[[Callable[[int, int | None], None]], Any]
) -> Generator[Preparing, None, Any]:
    """Run ``work(progress)`` in a thread, yielding ``Preparing`` events (<= 10/s) until it returns.

    The generator protocol cannot yield from inside a callback; a thread plus a polled
    counter keeps the event stream alive (and the GUI informed) while folders are scanned
    and decoded. ``work`` must honour its own cancel event.
    """
    box: dict = {}
    seen = {"done": 0, "total": 0}

    def progress(done: int, total: int | None) -> None:
        seen["done"], seen["total"] = done, total or 0

    def target() -> None:
        try:
            box["result"] = work(progress)
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    worker = threading.Thread(target=target, name=f"sslstudio-{stage}", daemon=True)
    worker.start()
    last = (-1, -1)
    while worker.is_alive():
        worker.join(0.1)
        now = (seen["done"], seen["total"])
        if now != last:
            last = now
            yield Preparing(stage=stage, done=now[0], total=now[1])
    if "error" in box:
        raise box["error"]
    return box["result"]
