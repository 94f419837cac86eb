"""Training driven through the window: curves, pause/resume, stop/resume, closing mid-run, errors.

Tiny steps take milliseconds, so "click Pause while step 1 is on screen" would race the trainer.
``gate`` wraps the real ``train`` and holds the generator after chosen steps until the test has
clicked; everything else (trainer, worker, thread, controller, page) is the real thing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sslstudio.core.events import (
    CheckpointSaved,
    MonitorLogged,
    RunFailed,
    RunFinished,
    RunStarted,
    RunStopped,
    StepLogged,
)
from sslstudio.core.train import trainer
from sslstudio.gui.run.controller import IDLE, PAUSED, PREPARING, RUNNING, STOPPING


def set_tiny(window, max_steps: int = 6, epochs: int = 1) -> None:  # noqa: ANN001
    """Tiny settings through the Method page's own controls."""
    form = window.method_page.run_form
    form.control("backbone").setCurrentText("tiny_cnn")
    form.control("image_size").setValue(32)
    form.control("batch_size").setValue(16)
    form.control("epochs").setValue(epochs)
    form.control("max_steps").setValue(max_steps)
    form.control("checkpoint_every").setValue(2)
    form.control("monitor_every").setValue(2)
    form.control("device").setCurrentText("cpu")


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> dict[int, threading.Event]:
    """``gate[k] = Event()`` holds the trainer right after it reported step ``k``, until set."""
    gates: dict[int, threading.Event] = {}
    real = trainer.train

    def gated(*args: object, **kwargs: object) -> Iterator[object]:
        for ev in real(*args, **kwargs):
            yield ev
            if isinstance(ev, StepLogged) and ev.step in gates:
                assert gates[ev.step].wait(30), f"test never released step {ev.step}"

    monkeypatch.setattr(trainer, "train", gated)
    yield gates
    for g in gates.values():  # never leave a trainer waiting
        g.set()


def collect(window) -> list[object]:  # noqa: ANN001
    events: list[object] = []
    window.controller.event.connect(events.append)
    return events


def steps_of(events: list[object]) -> list[int]:
    return [e.step for e in events if isinstance(e, StepLogged)]


def test_train_pause_resume_stop_and_resume_to_the_end(ready_window, qtbot, gate) -> None:
    w, page = ready_window, ready_window.train_page
    set_tiny(w)
    events = collect(w)
    gate[1], gate[3] = threading.Event(), threading.Event()
    assert page.start_button.isEnabled()
    page.start_button.click()
    assert w.controller.state == PREPARING and not page.start_button.isEnabled()
    assert (
        not page.pause_button.isEnabled() and page.stop_button.isEnabled()
    )  # nothing to pause while reading
    assert w.stack.currentWidget() is page  # Start shows the Train page

    qtbot.waitUntil(lambda: 1 in steps_of(events), timeout=60_000)
    assert w.controller.state == RUNNING
    page.pause_button.click()
    assert (
        w.controller.state == PAUSED
        and page.resume_button.isEnabled()
        and not page.pause_button.isEnabled()
    )
    assert w.run_status.text() == "Paused"
    gate[1].set()
    qtbot.wait(400)
    assert steps_of(events) == [0, 1]  # paused: no step while the button says so
    page.resume_button.click()
    assert w.controller.state == RUNNING

    qtbot.waitUntil(lambda: 3 in steps_of(events), timeout=30_000)
    t0 = time.perf_counter()
    page.stop_button.click()
    acknowledged = time.perf_counter() - t0
    assert (
        w.controller.state == STOPPING
        and not page.stop_button.isEnabled()
        and not page.pause_button.isEnabled()
    )
    assert page.state_label.text().startswith("Stopping") and w.run_status.text().startswith(
        "Stopping"
    )
    assert acknowledged < 0.1
    gate[3].set()
    qtbot.waitUntil(lambda: w.controller.state == IDLE, timeout=30_000)

    stopped = [e for e in events if isinstance(e, RunStopped)]
    assert len(stopped) == 1 and stopped[0].step == 4 and Path(stopped[0].path).is_dir()
    assert any(isinstance(e, CheckpointSaved) for e in events)
    assert any(isinstance(e, MonitorLogged) for e in events)
    page.redraw_now()
    assert len(page.loss_plot.buffer("raw")) == 4 and len(page.lr_plot.buffer("plan")) == 6
    assert len(page.health_plot.buffer("std")) >= 2 and len(page.rank_plot.buffer("rank")) >= 2
    assert len(page.health_plot.buffer("knn")) >= 2  # the samples have class folders
    xs, _ = page.loss_plot._curves["raw"][1].getData()
    assert len(xs) == 4  # the curve on screen, not only the buffer
    assert page.resume_button.isEnabled() and page.start_button.isEnabled()
    run_dir = w.controller.resumable
    assert run_dir is not None and "stopped" in page.log.toPlainText()

    events.clear()
    page.resume_button.click()  # continue the stopped run from its checkpoint
    qtbot.waitUntil(
        lambda: w.controller.state == IDLE and any(isinstance(e, RunFinished) for e in events),
        timeout=60_000,
    )
    started = next(e for e in events if isinstance(e, RunStarted))
    assert started.start_step == 4 and started.run_dir == run_dir
    assert steps_of(events) == [4, 5]
    finished = next(e for e in events if isinstance(e, RunFinished))
    assert finished.step == 6 and Path(finished.path).exists()
    page.redraw_now()
    assert list(page.loss_plot.buffer("raw").x) == [
        0,
        1,
        2,
        3,
        4,
        5,
    ]  # history reloaded + new steps
    assert not page.resume_button.isEnabled() and w.controller.resumable is None
    assert page.state_label.text().startswith("Finished")


def test_closing_the_window_mid_run_checkpoints_and_closes(
    ready_window, qtbot, gate, qt_messages
) -> None:
    w = ready_window
    set_tiny(w, max_steps=5000, epochs=1000)
    events = collect(w)
    gate[1] = threading.Event()
    w.start_run()
    qtbot.waitUntil(lambda: 1 in steps_of(events), timeout=60_000)
    job = w.controller._job
    w.close()
    assert w.isVisible() and w.controller.state == STOPPING  # waits for the checkpoint
    gate[1].set()
    qtbot.waitUntil(lambda: not w.isVisible(), timeout=30_000)
    assert not w.controller.is_running()
    stopped = [e for e in events if isinstance(e, RunStopped)]
    assert len(stopped) == 1 and stopped[0].step == 2 and Path(stopped[0].path).is_dir()
    assert (
        job.done
    )  # the thread was waited for, no "QThread: Destroyed while thread is still running"
    assert not qt_messages


def test_a_failing_run_shows_the_error_and_re_enables_controls(
    ready_window, qtbot, monkeypatch
) -> None:
    w, page = ready_window, ready_window.train_page
    set_tiny(w)
    real = trainer.train

    def broken(*args: object, **kwargs: object) -> Iterator[object]:
        for ev in real(*args, **kwargs):
            yield ev
            if isinstance(ev, StepLogged) and ev.step == 1:
                raise RuntimeError("the disk caught fire")

    monkeypatch.setattr(trainer, "train", broken)
    with qtbot.waitSignal(w.controller.runEnded, timeout=60_000) as ended:
        page.start_button.click()
    assert ended.args == ["failed"]
    box = page.error_box
    assert box is not None and "the disk caught fire" in box.text()
    assert "Traceback" in box.detailedText() and "RuntimeError" in box.detailedText()
    assert "ERROR" in page.log.toPlainText()
    assert (
        w.controller.state == IDLE
        and page.start_button.isEnabled()
        and not page.stop_button.isEnabled()
    )
    box.close()


def test_a_run_that_fails_inside_the_trainer_reports_run_failed(
    ready_window, qtbot, monkeypatch
) -> None:
    """The trainer's own failure path (RunFailed, then raise) ends in the same place."""
    import sslstudio.core.train.trainer as core_trainer

    w = ready_window
    set_tiny(w)

    def bad_save(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(core_trainer.ckpt, "save_checkpoint", bad_save)
    events = collect(w)
    with qtbot.waitSignal(w.controller.runEnded, timeout=60_000):
        w.start_run()
    failed = [e for e in events if isinstance(e, RunFailed)]
    assert failed and "No space left" in failed[0].message
    assert "No space left" in w.train_page.error_box.text()
    assert w.train_page.start_button.isEnabled()
    w.train_page.error_box.close()


def test_invalid_settings_are_refused_before_a_thread_starts(ready_window) -> None:
    w = ready_window
    w.augment_page.form.control("crop_scale_min").setValue(0.9)
    w.augment_page.form.control("crop_scale_max").setValue(0.5)
    w.start_run()
    assert not w.controller.is_running()
    assert "crop_scale_min" in w.train_page.error_box.text()
    w.train_page.error_box.close()
