"""Before step 0: the Train page shows the scan and decode progress, and a stop there is handled.

``preparing_trainer`` stands in for the trainer's preparation (a real run folder, Preparing events,
held until the test releases it, stop honoured the way the trainer honours it); the worker, thread,
controller and page are the real ones. The resume afterwards uses the real trainer.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sslstudio.core.events import Preparing, RunFinished, RunStarted, RunStopped
from sslstudio.core.train import trainer
from sslstudio.gui.pages.train.page import format_preparing
from sslstudio.gui.run.controller import IDLE, PREPARING, STOPPING
from tests.gui.test_training import collect, set_tiny, steps_of


def test_format_preparing() -> None:
    assert format_preparing(Preparing("scan", 1234, 10000)) == "Reading images… 1,234 / 10,000"
    assert format_preparing(Preparing("scan", 0, 0)) == "Reading images…"
    assert format_preparing(Preparing("scan", 52, 0)) == "Reading images… 52"
    assert format_preparing(Preparing("decode", 5, 10)) == "Decoding… 5 / 10"


@pytest.fixture
def preparing_trainer(monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """Replace ``train`` by a preparation that waits at 'decode 5 / 10' until ``release`` is set."""
    from sslstudio.core.train.runs import new_run_dir, write_run_config

    state: dict[str, object] = {
        "release": threading.Event(),
        "tell_run_dir": True,
        "real": trainer.train,
    }

    def preparing(cfg, stop=None, resume_from=None, pause=None) -> Iterator[object]:  # noqa: ANN001
        run_dir = Path(resume_from) if resume_from else new_run_dir(cfg)
        state["run_dir"] = str(run_dir)
        yield Preparing("scan", 0, 0)
        yield Preparing("scan", 1234, 10000)
        yield Preparing("decode", 5, 10)
        assert state["release"].wait(30), "the test never released the preparation"
        if stop is not None and stop.is_set():
            write_run_config(run_dir, cfg)  # as train() does for a stop while preparing
            yield RunStopped(step=0, path="", run_dir=str(run_dir) if state["tell_run_dir"] else "")
            return
        raise AssertionError("this stand-in only prepares")

    monkeypatch.setattr(trainer, "train", preparing)
    yield state
    state["release"].set()


def test_preparation_progress_then_stop_before_the_first_step_and_resume_from_step_0(
    ready_window, qtbot, preparing_trainer, monkeypatch
) -> None:
    w, page = ready_window, ready_window.train_page
    set_tiny(w, max_steps=2)
    events = collect(w)
    page.start_button.click()
    assert w.controller.state == PREPARING and w.run_status.text().startswith("Preparing")
    qtbot.waitUntil(
        lambda: any(isinstance(e, Preparing) and e.stage == "decode" for e in events),
        timeout=30_000,
    )
    assert page.state_label.text() == "Decoding… 5 / 10" and page.stats["step"].value.text() == "–"
    assert (page.progress.maximum(), page.progress.value()) == (10, 5)
    assert not page.pause_button.isEnabled() and page.stop_button.isEnabled()
    log = page.log.toPlainText()
    assert "reading the folder" in log and "decoding the images" in log

    page.stop_button.click()
    assert w.controller.state == STOPPING
    preparing_trainer["release"].set()
    qtbot.waitUntil(lambda: w.controller.state == IDLE, timeout=30_000)
    run_dir = preparing_trainer["run_dir"]
    assert (
        "stopped before the first step; resuming starts this run again from step 0"
        in page.log.toPlainText()
    )
    assert w.controller.resumable == run_dir and page.resume_button.isEnabled()
    assert (
        not (Path(run_dir) / "checkpoints").exists() and (Path(run_dir) / "config.json").is_file()
    )

    monkeypatch.setattr(trainer, "train", preparing_trainer["real"])
    events.clear()
    page.resume_button.click()
    qtbot.waitUntil(
        lambda: w.controller.state == IDLE and any(isinstance(e, RunFinished) for e in events),
        timeout=60_000,
    )
    started = next(e for e in events if isinstance(e, RunStarted))
    assert started.start_step == 0 and started.run_dir == run_dir
    assert steps_of(events) == [0, 1]
    assert any(isinstance(e, Preparing) for e in events)  # the real trainer's own preparation


def test_a_stop_before_the_first_step_without_a_run_folder_has_nothing_to_resume(
    ready_window, qtbot, preparing_trainer
) -> None:
    w, page = ready_window, ready_window.train_page
    set_tiny(w, max_steps=2)
    preparing_trainer["tell_run_dir"] = False
    page.start_button.click()
    qtbot.waitUntil(lambda: page.state_label.text().startswith("Decoding"), timeout=30_000)
    w.controller.stop()
    preparing_trainer["release"].set()
    qtbot.waitUntil(lambda: w.controller.state == IDLE, timeout=30_000)
    assert "stopped before the first step; nothing to resume." in page.log.toPlainText()
    assert w.controller.resumable is None and not page.resume_button.isEnabled()
    assert page.start_button.isEnabled() and page.progress.maximum() > 0  # not left "busy"
