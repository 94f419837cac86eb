"""How a run's state reads in the Train page: preparing progress, device, time left."""

from __future__ import annotations

import math
import re

from sslstudio.core.events import MonitorLogged, Preparing

STAGE_TEXT = {
    "scan": "Reading images…",
    "decode": "Decoding…",
    "check": "Reading the check folder…",
}


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


SHIFTED = "with colours and staining altered"


def verdict_sentence(ev: MonitorLogged, first: MonitorLogged | None, finished: bool = False) -> str:
    """'Is it learning?' in one or two sentences a pathologist reads without help, from the
    latest health check ``ev`` (its verdict against the untrained network when there is one,
    else the kNN / own-view score against ``first``, the check at step 0)."""
    go_on = " Explore the result to see what it learned." if finished else " Keep going."
    if ev.warning and ev.step > 0:
        return (
            "Something is wrong: the network now sees all images as nearly the same. "
            "Stop, and try a lower learning rate or another method."
        )
    if ev.verdict_sign is not None and ev.check_top1 is not None and ev.check_ref is not None:
        return _checked(ev, finished, go_on)
    if ev.verdict_sign is not None and ev.shift_top1 is not None and ev.shift_ref is not None:
        now, before = f"{ev.shift_top1:.0%}", f"{ev.shift_ref:.0%}"
        match = f"{SHIFTED}, it finds the right match {now} of the time (untrained: {before})"
        if ev.verdict_sign > 0:
            head = "It learned" if finished else "It is learning"
            return f"{head}: {match}.{go_on}"
        if ev.verdict_sign < 0:
            advice = "Retrain" if finished else "Keep going; if it stays so, retrain"
            return (
                f"Not better than the untrained network: {match}. It relies on colour more "
                f"than on tissue structure. {advice} with more colour change."
            )
        noise = ev.shift_noise if ev.shift_noise is not None else 0.0
        if abs(ev.shift_top1 - ev.shift_ref) > noise:  # a real difference, of unknown meaning
            then = "Look" if finished else "Keep going, then look"
            return (
                f"Cannot tell how it will do on new images: {match}, but this check has not "
                f"predicted results on new H&E slides. {then} at a few new images in Explore, "
                "or give the next run a check folder (Data page) to measure it."
            )
        if finished:  # "too early" no longer: the run is over
            return (
                f"Not clearly better than the untrained network: {match}, a difference within "
                "chance. A longer run may help."
            )
        return f"Too early to tell: {match}, a difference within chance.{go_on}"
    return _fallback(ev, first, go_on)


def _checked(ev: MonitorLogged, finished: bool, go_on: str) -> str:
    """The verdict measured on the check folder: labelled images from other slides."""
    match = (
        f"on your {ev.check_n} check images from other slides, the right tissue class "
        f"{ev.check_top1:.0%} of the time (untrained: {ev.check_ref:.0%})"
    )
    if ev.verdict_sign > 0:
        return f"{'It learned' if finished else 'It is learning'}: {match}.{go_on}"
    if ev.verdict_sign < 0:
        advice = "Retrain" if finished else "Keep going; if it stays so, retrain"
        return (
            f"Worse than the untrained network on new slides: {match}. {advice} with more "
            "colour change."
        )
    more = "More check images would tell." if finished else "Keep going."
    return f"Cannot tell yet: {match}, a difference within chance for this many images. {more}"


def _fallback(ev: MonitorLogged, first: MonitorLogged | None, go_on: str) -> str:
    """Without a verdict: the labelled (kNN) or own-view score against step 0's."""
    if ev.step == 0 or first is None:
        return "Measuring the untrained network: every later check is compared with it."
    for now, before, what in (
        (ev.knn_top1, first.knn_top1, "images placed with others of their class"),
        (ev.view_top1, first.view_top1, "images recognised again after a small change"),
    ):
        if now is None or before is None:
            continue
        gain = now - before
        if gain > 0.02:
            head = "It is learning"
        elif gain < -0.02:
            head = "It is getting worse than the untrained network"
        else:
            head = "No clear progress yet"
        return f"{head}: {now:.0%} of {what}, against {before:.0%} at the start.{go_on}"
    return f"Training is under way; no measure of quality is available for this folder.{go_on}"
