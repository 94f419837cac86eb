"""Keeping the machine awake: each platform's call, with the platform mocked; release always
follows."""

from __future__ import annotations

import logging
import os
import subprocess

import pytest

from sslstudio.gui.run import sleep_inhibit
from sslstudio.gui.run.sleep_inhibit import ES_CONTINUOUS, ES_SYSTEM_REQUIRED, SleepInhibitor


class FakeProcess:
    def __init__(self, args: list[str], **kwargs: object) -> None:
        self.args, self.kwargs = args, kwargs
        self.pid = 4242
        self.code: int | None = None
        self.terminated = self.killed = False
        self.stderr = None

    def poll(self) -> int | None:
        return self.code

    def terminate(self) -> None:
        self.terminated = True
        self.code = -15

    def kill(self) -> None:
        self.killed = True

    def wait(self, timeout: float | None = None) -> int:
        return self.code or 0


class FakePopen:
    def __init__(self) -> None:
        self.started: list[FakeProcess] = []

    def __call__(self, args: list[str], **kwargs: object) -> FakeProcess:
        p = FakeProcess(args, **kwargs)
        self.started.append(p)
        return p


class FakeKernel32:
    def __init__(self, result: int = 1) -> None:
        self.calls: list[int] = []
        self.result = result

    def SetThreadExecutionState(self, flags: int) -> int:  # noqa: N802 (the Win32 name)
        self.calls.append(flags)
        return self.result


@pytest.fixture
def binaries(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    found: dict[str, str] = {}
    monkeypatch.setattr(sleep_inhibit, "find_binary", lambda name: found.get(name))
    return found


def test_windows_sets_and_clears_the_execution_state() -> None:
    k = FakeKernel32()
    inhibitor = SleepInhibitor(platform="win32", kernel32=k)
    assert inhibitor.start() and inhibitor.active and inhibitor.method == "windows"
    assert inhibitor.start()  # idempotent: one request
    assert k.calls == [ES_CONTINUOUS | ES_SYSTEM_REQUIRED]
    inhibitor.release()
    inhibitor.release()
    assert k.calls == [ES_CONTINUOUS | ES_SYSTEM_REQUIRED, ES_CONTINUOUS] and not inhibitor.active


def test_windows_refusal_is_not_active() -> None:
    inhibitor = SleepInhibitor(platform="win32", kernel32=FakeKernel32(result=0))
    assert not inhibitor.start() and inhibitor.method == "none"
    inhibitor.release()  # nothing to undo


def test_macos_runs_caffeinate_tied_to_our_pid(binaries: dict[str, str]) -> None:
    binaries["caffeinate"] = "/usr/bin/caffeinate"
    popen = FakePopen()
    inhibitor = SleepInhibitor(platform="darwin", popen=popen)
    assert inhibitor.start() and inhibitor.method == "caffeinate"
    (proc,) = popen.started
    assert proc.args == ["/usr/bin/caffeinate", "-i", "-w", str(os.getpid())]
    assert proc.kwargs["stdin"] is subprocess.DEVNULL
    inhibitor.release()
    assert proc.terminated and not inhibitor.active


def test_linux_uses_systemd_inhibit_around_a_process_that_ends_with_ours(
    binaries: dict[str, str],
) -> None:
    binaries["systemd-inhibit"] = "/usr/bin/systemd-inhibit"
    popen = FakePopen()
    inhibitor = SleepInhibitor("Training SimCLR", platform="linux", popen=popen)
    assert inhibitor.start() and inhibitor.method == "systemd-inhibit"
    args = popen.started[0].args
    assert (
        args[0] == "/usr/bin/systemd-inhibit"
        and "--what=sleep:idle" in args
        and "--why=Training SimCLR" in args
    )
    assert args[-4:] == [
        "tail",
        f"--pid={os.getpid()}",
        "-f",
        "/dev/null",
    ]  # never outlives the app
    inhibitor.release()
    assert popen.started[0].terminated


def test_linux_without_systemd_inhibit_is_a_logged_no_op(binaries: dict[str, str], caplog) -> None:
    popen = FakePopen()
    inhibitor = SleepInhibitor(platform="linux", popen=popen)
    with caplog.at_level(logging.INFO, logger="sslstudio.gui.run.sleep_inhibit"):
        assert not inhibitor.start()
    assert inhibitor.method == "none" and not popen.started
    assert "systemd-inhibit not found" in caplog.text
    inhibitor.release()


def test_a_helper_that_ended_early_is_reported_not_killed(binaries: dict[str, str], caplog) -> None:
    binaries["systemd-inhibit"] = "/usr/bin/systemd-inhibit"
    popen = FakePopen()
    inhibitor = SleepInhibitor(platform="linux", popen=popen)
    inhibitor.start()
    popen.started[0].code = 1  # e.g. no logind in a container
    with caplog.at_level(logging.INFO, logger="sslstudio.gui.run.sleep_inhibit"):
        inhibitor.release()
    assert not popen.started[0].terminated and "exit 1" in caplog.text


def test_a_binary_that_will_not_start_does_not_raise(binaries: dict[str, str]) -> None:
    binaries["caffeinate"] = "/usr/bin/caffeinate"

    def broken(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    inhibitor = SleepInhibitor(platform="darwin", popen=broken)
    assert not inhibitor.start() and inhibitor.method == "none"
    inhibitor.release()


def test_other_platforms_do_nothing() -> None:
    inhibitor = SleepInhibitor(platform="freebsd14")
    assert not inhibitor.start()
    inhibitor.release()


class CountingInhibitor:
    def __init__(self) -> None:
        self.starts = self.releases = 0
        self.active = False

    def start(self) -> bool:
        self.starts += 1
        self.active = True
        return True

    def release(self) -> None:
        self.releases += 1
        self.active = False


def test_the_controller_holds_it_from_run_start_until_the_thread_ends(ready_window, qtbot) -> None:
    from tests.gui.test_training import set_tiny

    w = ready_window
    fake = CountingInhibitor()
    w.controller.inhibitor = fake
    set_tiny(w, max_steps=2)
    seen: list[bool] = []
    w.controller.event.connect(lambda ev: seen.append(fake.active))
    with qtbot.waitSignal(w.controller.runEnded, timeout=60_000):
        w.start_run()
    assert fake.starts >= 1 and fake.releases >= 1 and not fake.active
    assert seen[-1]  # still held while the last event (RunFinished) arrived
