"""Keeping a run inside its time budget: the step count follows the measured pace.

The budget planner sizes a run from a short warm-up; the real pace drifts (caches warm up,
another program takes a core, a checkpoint is slow). ``Deadline`` watches the pace since the
run settled (periodic probes and checkpoints included, in proportion) and says when the plan
should end at a different step so that the run, its last evaluation and its last checkpoint
finish by the deadline. A whole-run average, not a short window: a window that holds a probe
or not swings the estimate by several per cent and the plan with it. The learning-rate schedule is
then re-laid over the new length (``plan.revise``), so it *ends* rather than being cut.
Steps need not cost the same (progressive resizing trains early steps at a lower resolution):
the pace is then kept per unit of relative cost, and the steps to come are costed with the sizes
they would have.
"""

from __future__ import annotations

import time
from collections.abc import Callable

SETTLE = 3  # first steps left out of the pace (allocator, kernel selection)
GAP = 50  # steps between two revisions
SHRINK_SLACK = 0.01  # revise down when the plan overruns by more than this share
GROW_SLACK = 0.05  # revise up (first half of the run only) when this share of time would be idle


class Deadline:
    """Args: budget_s: the whole run's seconds (0 = no budget); spent_s: seconds a resumed run
    had already used (from its checkpoint)."""

    def __init__(self, budget_s: float, spent_s: float = 0.0) -> None:
        self.budget_s = float(budget_s)
        self._t0 = time.perf_counter() - spent_s
        self._first: tuple[int, float, float] | None = None  # (step, time, cost units done)
        self._last: tuple[int, float, float] | None = None
        self._units = 0.0
        self._seen = 0
        self._last_revision = -GAP
        self._ending: dict[str, float] = {}  # slowest probe, slowest save: the run's end needs both

    @property
    def active(self) -> bool:
        return self.budget_s > 0

    def spent(self) -> float:
        return time.perf_counter() - self._t0

    def step_done(self, step: int, cost: float = 1.0) -> None:
        """Step ``step - 1`` ended; ``cost`` is its expected time relative to a full-size step."""
        self._seen += 1
        self._units += cost
        if self._seen > SETTLE:
            mark = (step, time.perf_counter(), self._units)
            self._first = self._first or mark
            self._last = mark

    def note(self, kind: str, seconds: float) -> None:
        """A probe or a checkpoint (``kind``) took ``seconds``: the run's end needs one of each."""
        self._ending[kind] = max(self._ending.get(kind, 0.0), seconds)

    @property
    def ending_s(self) -> float:
        return sum(self._ending.values())

    def pace(self) -> float | None:
        """Seconds per full-size step since the run settled, periodic probes and checkpoints included."""
        if self._first is None or self._last is None or self._last[0] - self._first[0] < 10:
            return None
        (_, t0, u0), (_, t1, u1) = self._first, self._last
        return (t1 - t0) / (u1 - u0)

    def revised_total(
        self, step: int, total: int, remaining_cost: Callable[[int, int], float] | None = None
    ) -> int | None:
        """The total step count that ends on time, when it differs enough from ``total``.

        ``step`` is the next step to run; ``remaining_cost(step, t)`` is the relative cost of the
        steps from ``step`` to ``t`` were the run to end at ``t`` (default: one per step). Returns
        None when the plan can stand.
        """
        if not self.active or step - self._last_revision < GAP:
            return None
        pace = self.pace()
        if pace is None:
            return None
        left = self.budget_s - self.spent() - 1.5 * self.ending_s - 1.0
        if remaining_cost is None:
            fit = max(step + 1, step + int(left / pace))
        else:
            fit = _last_fitting(step, left / pace, remaining_cost)
        shrink = fit < total and total - fit > max(1, SHRINK_SLACK * total)
        grow = fit > total * (1 + GROW_SLACK) and step < total // 2
        if not (shrink or grow):
            return None
        self._last_revision = step
        return fit


def _last_fitting(step: int, units: float, cost: Callable[[int, int], float]) -> int:
    """The largest end step ``t > step`` whose remaining steps cost at most ``units``
    (``step + 1`` when none does); ``cost(step, t)`` grows with ``t``."""
    lo, hi = step + 1, step + 2
    while cost(step, hi) <= units:  # double until past the budget
        lo, hi = hi, step + 2 * (hi - step)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if cost(step, mid) <= units else (lo, mid)
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
