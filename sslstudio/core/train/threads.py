"""How many CPU threads train fastest *now*: a shared CPU makes fewer threads faster.

On a 2-core machine with one busy process beside it, two torch threads ran 59 steps where one
ran 114 (issue 23): each step waits for the thread that has no core. Which count wins depends
on the load, and the load changes, so the run times short windows at each candidate count
(1, half and all of torch's threads), trains at the fastest, and measures again:

- after a while (20 s, doubling each time the choice holds, at most 160 s): a quiet machine
  pays a few steps at a slower count a few times per run;
- at once when the step time drifts by more than 30 % from what the chosen count was measured
  at (a process started or ended beside the run).

The first step after a switch is not counted: the thread pool wakes up in it. The chooser
only times and decides; the trainer sets the count between steps and says when it changes.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable

import torch

from sslstudio.core.events import PlanRevised

WINDOW = 3  # steps per candidate per round; the first of them after a switch is not counted
FIRST_RECHECK_S = 20.0
LONGEST_RECHECK_S = 160.0
DRIFT = 0.3  # a step this much slower or faster than measured: the load changed, measure again
SWITCH_GAIN = 0.05  # another count must be this much faster to be worth a switch


def candidates(most: int) -> list[int]:
    return sorted({1, max(1, most // 2), most})


class ThreadChooser:
    """Call ``next_threads()`` before a step and ``step_took(seconds)`` after it."""

    def __init__(
        self,
        most: int,
        *,
        clock: Callable[[], float] = time.perf_counter,
        window: int = WINDOW,
        first_recheck_s: float = FIRST_RECHECK_S,
        longest_recheck_s: float = LONGEST_RECHECK_S,
    ) -> None:
        self.options = candidates(most)
        self.current = most
        self.measured: dict[int, float] = {}  # median step seconds per count, last round
        self.rounds = 0
        self._clock, self._window = clock, window
        self._first, self._longest = first_recheck_s, longest_recheck_s
        self._recheck_s = first_recheck_s
        self._next_check = 0.0
        self._since_round = 0  # steps at the chosen count since the last round
        self._recent: list[float] = []
        self._start_round()

    def _start_round(self) -> None:
        order = [n for n in self.options if n != self.current] + [self.current]
        self._queue = [n for n in order for _ in range(self._window)]
        self._times: dict[int, list[float]] = {n: [] for n in self.options}
        self._previous: int | None = None

    def next_threads(self) -> int:
        return self._queue[0] if self._queue else self.current

    def step_took(self, seconds: float) -> str | None:
        """Note the last step's seconds; returns a notice when the count in use changes (and
        after the first round, to say which count the run uses)."""
        if self._queue:
            n = self._queue.pop(0)
            if n == self._previous:
                self._times[n].append(seconds)
            self._previous = n
            return self._decide() if not self._queue else None
        self._since_round += 1
        self._recent = (self._recent + [seconds])[-self._window :]
        base = self.measured.get(self.current)
        typical = statistics.median(self._recent)
        drifted = (
            base is not None
            and len(self._recent) == self._window
            and abs(typical - base) > DRIFT * base
        )
        if drifted:
            self._recheck_s = self._first  # the load changed: measure again soon, too
        if drifted or self._clock() >= self._next_check:
            self._start_round()
        return None

    def _decide(self) -> str | None:
        self.rounds += 1
        self.measured = {n: statistics.median(t) for n, t in self._times.items() if t}
        before = self.current
        best = min(self.measured, key=self.measured.get)
        if self.measured[best] < (1 - SWITCH_GAIN) * self.measured.get(before, float("inf")):
            self.current = best
        if self.current == before and self.rounds > 1:
            self._recheck_s = min(self._longest, 2 * self._recheck_s)
        self._next_check = self._clock() + self._recheck_s
        self._recent, self._since_round = [], 0
        if self.current == before and self.rounds > 1:
            return None
        return self.describe()

    def describe(self) -> str:
        timed = ", ".join(
            f"{n} thread{'' if n == 1 else 's'} {s:.2f} s/step"
            for n, s in sorted(self.measured.items())
        )
        most = max(self.options)
        shared = " (the CPU is shared: fewer threads are faster now)" if self.current < most else ""
        return f"training with {self.current} of {most} CPU threads{shared}: {timed}"


def chooser_for(cfg, device, processes: int = 1) -> ThreadChooser | None:
    """A chooser for a timed CPU run whose thread count the user left to the studio."""
    if device.type != "cpu" or cfg.threads or not cfg.time_budget_s or processes > 1:
        return None
    most = torch.get_num_threads()
    return ThreadChooser(most) if most > 1 else None


def plan_note(cfg, device) -> str | None:
    """The budget plan's line on threads, for a CPU run whose thread count is left open."""
    most = torch.get_num_threads()
    if device.type != "cpu" or cfg.threads or most < 2:
        return None
    load, cores = os.getloadavg()[0], os.cpu_count() or most
    shared = (
        f"; the CPU looks shared now (load {load:.1f} on {cores} cores)" if load > cores / 2 else ""
    )
    return (
        f"CPU threads: the fastest of {', '.join(map(str, candidates(most)))} now, timed while "
        f"training and again as the load changes{shared}; the run says which it uses"
    )


def use_threads(chooser: ThreadChooser) -> None:
    """Set torch's intra-op threads to the chooser's next count (a no-op when unchanged)."""
    n = chooser.next_threads()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


def threads_revised(log, step: int, why: str, plan, lr_schedule) -> PlanRevised:
    """The notice the CLI and the Train page show, written to the run's metrics too."""
    log.write("threads", step=step, reason=why)
    return PlanRevised(
        step=step,
        reason=why,
        batch_size=plan.batch_size,
        total_steps=plan.total_steps,
        peak_lr=plan.peak_lr,
        lr_schedule=tuple(float(x) for x in lr_schedule),
    )
