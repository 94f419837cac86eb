"""Keeping a run inside its time budget: the step count follows the measured pace.

The budget planner sizes a run from a short warm-up; the real pace drifts (caches warm up,
another program takes a core, a checkpoint is slow). ``Deadline`` watches the pace and says when
the plan should end at a different step so that the run, its last evaluation and its last
checkpoint finish by the deadline. The learning-rate schedule is then re-laid over the new length
(``plan.revise``), so it *ends* rather than being cut.

The pace is two parts. Probes and checkpoints are noted apart and spread over all steps (they
come every so many steps); a step's own time is a moving average over about ``HORIZON`` steps,
so it follows a machine that speeds up or slows down, and no probe makes it swing. Steps need not
cost the same (progressive resizing trains early steps at a lower resolution): the time is kept
per size, and the steps to come are costed with the sizes they would have (a size not trained
yet: the planner's timings, or the cost model, scaled from the sizes seen).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from sslstudio.core.train.resizing import relative_cost, seconds_between

SETTLE = 3  # first steps left out of the pace (allocator, kernel selection)
GAP = 50  # steps between two revisions
SHRINK_SLACK = 0.01  # revise down when the plan overruns by more than this share
GROW_SLACK = 0.02  # revise up when this share of the time left would be idle
GROW_UNTIL = 0.8  # ... but not in the run's last fifth: its schedule is left to end as laid
HORIZON = 100  # steps: a size's time follows the machine's drift over about this many
MIN_SAMPLES = 5  # steps at a size before its own average is trusted over the cost model


class Deadline:
    """Args: budget_s: the whole run's seconds (0 = no budget); spent_s: seconds a resumed run
    had already used (from its checkpoint); final_size: the run's full image size (progressive
    resizing: the cost model for sizes not trained yet); measured: seconds per step by size as
    the planner timed them before the run (their ratios price sizes not trained yet)."""

    def __init__(
        self,
        budget_s: float,
        spent_s: float = 0.0,
        final_size: int = 0,
        measured: dict[int, float] | None = None,
    ) -> None:
        self.budget_s = float(budget_s)
        self.final_size = final_size
        self.measured = dict(measured or {})
        self._t0 = time.perf_counter() - spent_s
        self._prev: float | None = None  # when the previous step ended
        self._by_size: dict[int, list[float]] = {}  # size -> [seconds a step (moving), steps]
        self._last_size = 0
        self._aside = 0.0  # probe and save seconds since the previous step ended
        self._overhead = 0.0  # probe and save seconds since the run settled
        self._seen = 0
        self._last_revision = -GAP
        self._ending: dict[str, float] = {}  # slowest probe, slowest save: the run's end needs both

    @property
    def active(self) -> bool:
        return self.budget_s > 0

    def spent(self) -> float:
        return time.perf_counter() - self._t0

    def step_done(self, step: int, size: int = 0) -> None:
        """Step ``step - 1`` ended; it trained at ``size`` px (0: one size throughout). The time
        since the previous step ended is its own, less any probe or save noted in between
        (those are spread over all steps alike: they come every so many steps, whatever the
        size)."""
        now = time.perf_counter()
        self._seen += 1
        if self._seen > SETTLE and self._prev is not None:
            acc = self._by_size.setdefault(size, [0.0, 0])
            acc[1] += 1  # the plain mean for the first HORIZON steps, then a moving average
            acc[0] += (max(0.0, now - self._prev - self._aside) - acc[0]) / min(acc[1], HORIZON)
            self._overhead += self._aside
            self._last_size = size
        self._prev, self._aside = now, 0.0

    def note(self, kind: str, seconds: float) -> None:
        """A probe or a checkpoint (``kind``) took ``seconds``: the run's end needs one of each."""
        self._ending[kind] = max(self._ending.get(kind, 0.0), seconds)
        self._aside += seconds

    @property
    def ending_s(self) -> float:
        return sum(self._ending.values())

    def pace(self) -> float | None:
        """Seconds a step at the current size takes now, its share of probes and checkpoints
        included."""
        steps = self._steps()
        if steps < 10:
            return None
        return self.seconds_at(self._last_size) + self._overhead / steps

    def _steps(self) -> int:
        return int(sum(n for _, n in self._by_size.values()))

    def seconds_at(self, size: int) -> float:
        """Expected seconds of a step at ``size``: its own average once a few steps were seen,
        else the best-sampled size's, scaled by the planner's timings (or the cost model)."""
        t, n = self._by_size.get(size, (0.0, 0))
        if n >= MIN_SAMPLES:
            return t
        ref = max(self._by_size, key=lambda k: self._by_size[k][1])
        t_ref = self._by_size[ref][0]
        if not size or not ref:
            return t_ref
        if self.measured:
            ratio = seconds_between(size, self.measured) / seconds_between(ref, self.measured)
        else:
            final = self.final_size or max(size, ref)
            ratio = float(relative_cost(size, final) / relative_cost(ref, final))
        return t_ref * ratio

    def revised_total(
        self, step: int, total: int, sizes_of: Callable[[int, int], np.ndarray] | None = None
    ) -> int | None:
        """The total step count that ends on time, when it differs enough from ``total``.

        ``step`` is the next step to run; ``sizes_of(step, t)`` gives the sizes steps ``step`` to
        ``t`` would train at, were the run to end at ``t`` (default: every step alike). Returns
        None when the plan can stand.
        """
        if not self.active or step - self._last_revision < GAP:
            return None
        pace = self.pace()
        if pace is None:
            return None
        left = self.budget_s - self.spent() - 1.5 * self.ending_s - 1.0
        if sizes_of is None:
            fit = max(step + 1, step + int(left / pace))
        else:
            fit = _last_fitting(step, left, lambda a, end: self._seconds(sizes_of(a, end)))
        shrink = fit < total and total - fit > max(1, SHRINK_SLACK * total)
        grow = fit - step > (total - step) * (1 + GROW_SLACK) and step < GROW_UNTIL * total
        if not (shrink or grow):
            return None
        self._last_revision = step
        return fit

    def _seconds(self, sizes: np.ndarray) -> float:
        values, counts = np.unique(sizes, return_counts=True)
        overhead = self._overhead / self._steps() * len(sizes)  # probes and saves to come
        return overhead + float(
            sum(self.seconds_at(int(v)) * c for v, c in zip(values, counts, strict=True))
        )


def _last_fitting(step: int, budget: float, cost: Callable[[int, int], float]) -> int:
    """The largest end step ``t > step`` whose remaining steps cost at most ``budget``
    (``step + 1`` when none does); ``cost(step, t)`` grows with ``t``."""
    lo, hi = step + 1, step + 2
    while cost(step, hi) <= budget:  # double until past the budget
        lo, hi = hi, step + 2 * (hi - step)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if cost(step, mid) <= budget else (lo, mid)
    return lo


def parse_duration(text: str) -> float:
    """Seconds in ``"90s"``, ``"10m"``, ``"1.5h"``, ``"1h30m"``, ``"overnight"`` (10 h), or a bare
    number of minutes; ``ValueError`` with the accepted forms otherwise."""
    t = text.strip().lower().replace(" ", "")
    if t == "overnight":
        return 10 * 3600.0
    units = {"s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
    try:
        return float(t) * 60.0
    except ValueError:
        pass
    total, number = 0.0, ""
    i = 0
    while i < len(t):
        c = t[i]
        if c.isdigit() or c == ".":
            number += c
            i += 1
            continue
        unit = "min" if t.startswith("min", i) else c
        if unit not in units or not number:
            break
        total += float(number) * units[unit]
        number = ""
        i += len(unit)
    else:
        if not number and total > 0:
            return total
    raise ValueError(
        f"cannot read the time budget {text!r}: use e.g. 90s, 10m, 1h, 1h30m or overnight"
    )
