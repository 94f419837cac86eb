"""The thread chooser's logic on a simulated machine with a fake clock (no timing here)."""

import dataclasses

import torch

from sslstudio.config import RunConfig
from sslstudio.core.train.threads import ThreadChooser, candidates, chooser_for

# seconds per step by thread count: on 2 cores, alone and beside one busy process (the shape
# measured in issue 23: 2 threads 1.9x slower than 1 under load, 1.8x faster when quiet)
QUIET = {1: 1.0, 2: 0.55}
BUSY = {1: 1.1, 2: 2.1}


class Machine:
    """A fake clock whose time advances by each step's cost; the first step after a switch of
    thread count pays a wake-up cost, as a real thread pool does."""

    def __init__(self, load=lambda t: QUIET, wake=0.5):
        self.t, self.load, self.wake, self.last = 0.0, load, wake, None

    def clock(self) -> float:
        return self.t

    def step(self, n: int) -> float:
        dt = self.load(self.t)[n] + (self.wake if self.last not in (None, n) else 0.0)
        self.t += dt
        self.last = n
        return dt


def run(machine: Machine, seconds: float, fixed: int | None = None, window: int = 3):
    chooser = ThreadChooser(2, clock=machine.clock, window=window)
    steps, notices, used = 0, [], []
    while machine.t < seconds:
        n = fixed or chooser.next_threads()
        note = chooser.step_took(machine.step(n))
        steps, used = steps + 1, used + [n]
        if note:
            notices.append((machine.t, note))
    return steps, notices, used, chooser


def test_candidates_are_one_half_and_all():
    assert candidates(2) == [1, 2] and candidates(16) == [1, 8, 16] and candidates(1) == [1]


def test_a_quiet_machine_keeps_all_threads_and_loses_few_steps():
    steps, notices, used, chooser = run(Machine(), 600)
    best, _, _, _ = run(Machine(), 600, fixed=2)
    assert chooser.current == 2 and steps >= 0.97 * best, (steps, best)
    assert len(notices) == 1 and notices[0][1].startswith("training with 2 of 2 CPU threads")
    assert chooser.rounds <= 6  # the re-checks grow rarer while the choice holds


def test_a_busy_machine_trains_on_one_thread():
    steps, notices, used, chooser = run(Machine(load=lambda t: BUSY), 600)
    best, _, _, _ = run(Machine(load=lambda t: BUSY), 600, fixed=1)
    assert chooser.current == 1 and steps >= 0.95 * best, (steps, best)
    assert "1 of 2 CPU threads (the CPU is shared" in notices[0][1]
    assert "1 thread 1.10 s/step, 2 threads 2.10 s/step" in notices[0][1]


def test_load_that_comes_is_noticed_within_a_few_steps_and_load_that_goes_within_a_recheck():
    def load(t):
        return BUSY if 100 <= t < 400 else QUIET

    steps, notices, used, chooser = run(Machine(load=load), 700)
    times = [t for t, _ in notices]
    assert [n.split(" of ")[0] for _, n in notices] == [
        "training with 2",
        "training with 1",
        "training with 2",
    ]
    assert 100 < times[1] < 100 + 10 * BUSY[2]  # the drift, not the periodic re-check
    assert 400 < times[2] < 400 + 160 + 10  # at the latest the longest re-check interval
    one, two = run(Machine(load=load), 700, fixed=1)[0], run(Machine(load=load), 700, fixed=2)[0]
    assert steps >= 0.9 * max(one, two) and steps > min(one, two), (steps, one, two)


def test_the_step_after_a_switch_is_not_counted():
    # a huge wake-up cost would make every switched-to count look slow if it were counted (two
    # steps per count: the median alone would not hide it)
    steps, notices, used, chooser = run(Machine(wake=50.0), 60, window=2)
    assert chooser.measured == {1: 1.0, 2: 0.55}


def test_only_a_timed_cpu_run_with_threads_left_open_gets_a_chooser(monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)
    cfg = RunConfig(data_root="x", time_budget_s=120.0)
    cpu = torch.device("cpu")
    assert chooser_for(cfg, cpu).options == [1, 2, 4]
    assert chooser_for(dataclasses.replace(cfg, threads=2), cpu) is None
    assert chooser_for(dataclasses.replace(cfg, time_budget_s=0.0), cpu) is None
    assert chooser_for(cfg, torch.device("cuda")) is None
    assert chooser_for(cfg, cpu, processes=2) is None


def test_a_timed_run_sets_the_chosen_threads_and_says_which(tiny_folder, tmp_path, monkeypatch):
    from sslstudio.core.events import PlanRevised, StepLogged
    from sslstudio.core.train.runs import read_metrics
    from sslstudio.core.train.trainer import train
    from tests.shapes import tiny_config

    set_to: list[int] = []
    monkeypatch.setattr(torch, "set_num_threads", set_to.append)
    monkeypatch.setattr(torch, "get_num_threads", lambda: set_to[-1] if set_to else 2)
    cfg = tiny_config(tiny_folder, tmp_path / "run", threads=0, time_budget_s=600.0, epochs=4)
    events = list(train(cfg))
    said = [e for e in events if isinstance(e, PlanRevised) and "CPU threads" in e.reason]
    assert len(said) >= 1 and said[0].reason.startswith("training with ")
    assert set_to[:2] == [1, 2]  # the first round times 1 thread, then 2
    assert len([e for e in events if isinstance(e, StepLogged)]) == 12
    assert any(r["kind"] == "threads" for r in read_metrics(tmp_path / "run"))


def test_the_budget_plan_names_the_thread_choice_only_when_it_is_left_open(monkeypatch):
    from sslstudio.core.train.threads import plan_note

    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    cfg = RunConfig(data_root="x")
    note = plan_note(cfg, torch.device("cpu"))
    assert note.startswith("CPU threads: the fastest of 1, 2 now")
    assert plan_note(dataclasses.replace(cfg, threads=2), torch.device("cpu")) is None
    assert plan_note(cfg, torch.device("cuda")) is None
