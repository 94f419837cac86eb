"""A run the window hands to torchrun (2 CPU processes, gloo) is followed like a local one."""

from __future__ import annotations

import pytest

from sslstudio.core.events import MonitorLogged, RunFinished, RunStarted, RunStopped, StepLogged
from sslstudio.gui.run.controller import IDLE, RunController
from sslstudio.gui.run.sleep_inhibit import SleepInhibitor
from sslstudio.gui.run.torchrun_worker import torchrun_command
from tests.shapes import tiny_config


def _follow(controller: RunController) -> tuple[list[object], list[str]]:
    events: list[object] = []
    ended: list[str] = []
    controller.event.connect(events.append)
    controller.runEnded.connect(ended.append)
    return events, ended


def test_the_command_is_the_documented_torchrun_line():
    cmd = torchrun_command("/x/config.json", 4, None)
    assert cmd[1:6] == ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=4", "-m"]
    assert cmd[6:] == [
        "sslstudio",
        "train",
        "--config",
        "/x/config.json",
        "--distributed",
        "--events-json",
        "--quiet",
    ]
    assert torchrun_command("c", 2, "/runs/r")[6:10] == [
        "sslstudio",
        "train",
        "--resume",
        "/runs/r",
    ]


def test_a_two_process_run_streams_its_events_and_finishes(qtbot, tiny_folder, tmp_path):
    controller = RunController(inhibitor=SleepInhibitor(platform="test"))
    events, ended = _follow(controller)
    cfg = tiny_config(tiny_folder, tmp_path / "run", device="cpu", max_steps=3, epochs=1)
    controller.start(cfg, processes=2)
    assert not controller.can_pause
    qtbot.waitUntil(lambda: bool(ended), timeout=180_000)
    assert ended == ["finished"], controller.state
    started = next(e for e in events if isinstance(e, RunStarted))
    assert started.run_dir == str(tmp_path / "run") and started.batch_size == 8
    assert [e.step for e in events if isinstance(e, StepLogged)] == [0, 1, 2]  # rank 0 only
    assert any(isinstance(e, MonitorLogged) for e in events)
    assert isinstance(events[-1], RunFinished) and controller.state == IDLE
    assert (tmp_path / "run" / "torchrun.log").is_file()


def test_stop_reaches_every_rank_and_the_run_resumes(qtbot, tiny_folder, tmp_path):
    controller = RunController(inhibitor=SleepInhibitor(platform="test"))
    events, ended = _follow(controller)
    cfg = tiny_config(tiny_folder, tmp_path / "run", device="cpu", epochs=400, checkpoint_every=4)
    controller.start(cfg, processes=2)
    qtbot.waitUntil(
        lambda: any(isinstance(e, StepLogged) and e.step >= 1 for e in events), timeout=180_000
    )
    controller.stop()
    qtbot.waitUntil(lambda: bool(ended), timeout=120_000)
    assert ended == ["stopped"]
    stopped = next(e for e in events if isinstance(e, RunStopped))
    assert stopped.path and controller.resumable == str(tmp_path / "run")
    events.clear()
    ended.clear()
    controller.start(cfg, resume_from=controller.resumable, processes=2)
    qtbot.waitUntil(lambda: any(isinstance(e, RunStarted) for e in events), timeout=180_000)
    assert next(e for e in events if isinstance(e, RunStarted)).start_step == stopped.step
    controller.stop()
    qtbot.waitUntil(lambda: bool(ended), timeout=120_000)


@pytest.mark.parametrize("bad", ["no-such-backbone"])
def test_a_failing_launch_says_why(qtbot, tiny_folder, tmp_path, bad):
    controller = RunController(inhibitor=SleepInhibitor(platform="test"))
    failures: list[str] = []
    controller.failed.connect(lambda message, details: failures.append(message + "\n" + details))
    _, ended = _follow(controller)
    controller.start(
        tiny_config(tiny_folder, tmp_path / "run", device="cpu", backbone=bad), processes=2
    )
    qtbot.waitUntil(lambda: bool(ended), timeout=180_000)
    assert ended == ["failed"] and failures and bad in failures[0]
