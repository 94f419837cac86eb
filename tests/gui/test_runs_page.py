"""The Runs page: history read from run folders, details, compare, delete (confirmed), resume, open.

Most run folders here are written by ``make_run`` in the trainer's own layout (config.json,
metrics.jsonl, checkpoint meta); the resume test trains a real run and stops it.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QMessageBox

from sslstudio.config import RunConfig
from sslstudio.core.events import RunFinished, RunStarted, StepLogged
from sslstudio.core.train.runs import RunLock, RunLockedError
from sslstudio.gui.run.history import Curves, delete_run, flatten_config, format_age, list_runs
from sslstudio.paths import runs_dir, sample_images_dir
from tests.gui.test_training import collect


def make_run(
    name: str,
    *,
    steps: int = 5,
    total: int = 10,
    ending: str | None = "stopped",
    knn: bool = True,
    ckpt: int | None = None,
    root: Path | None = None,
    mtime: float | None = None,
    **cfg: object,
) -> Path:
    """A run folder as the trainer leaves it, without training."""
    run = (root or runs_dir()) / name
    (run / "checkpoints").mkdir(parents=True)
    config = RunConfig(data_root=str(sample_images_dir()), backbone="tiny_cnn", **cfg)
    (run / "config.json").write_text(config.to_json())
    # the rows in the format written before the events codec: old logs must still read
    rows = [{"kind": "start", "step": 0, "total_steps": total, "device": "cpu", "notices": []}]
    for s in range(steps):
        rows.append(
            {
                "kind": "step",
                "step": s,
                "epoch": 0,
                "samples_seen": 8 * (s + 1),
                "loss": 3.0 - 0.1 * s,
                "lr": 0.1,
                "images_per_s": 100.0,
                "data_wait": 0.1,
                "eta_s": 1.0,
                "extra": {},
            }
        )
        if knn and s % 2 == 0:
            monitor = {"step": s, "std_sqrt_d": 0.5, "rankme": 9.0, "embed_dim": 128}
            rows.append({"kind": "monitor", **monitor, "knn_top1": 0.4 + 0.01 * s})
    if ending == "failed":
        rows.append({"kind": "failed", "step": steps, "message": "DivergedError: loss is nan"})
    elif ending:
        rows.append({"kind": ending, "step": steps})
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if ckpt is not None:
        (run / "checkpoints" / f"step_{ckpt:07d}").mkdir()
        (run / "checkpoints" / f"step_{ckpt:07d}" / "meta.json").write_text(
            json.dumps({"step": ckpt})
        )
    if ending == "finished":
        (run / "checkpoints" / "final").mkdir()
        (run / "checkpoints" / "final" / "meta.json").write_text(json.dumps({"step": steps}))
    if mtime is not None:
        os.utime(run / "config.json", (mtime, mtime))
    return run


@pytest.fixture
def history() -> dict[str, Path]:
    t = 1_750_000_000.0
    return {
        "finished": make_run("a-finished", steps=10, total=10, ending="finished", mtime=t),
        "failed": make_run(
            "b-failed",
            steps=3,
            ending="failed",
            ckpt=2,
            mtime=t + 60,
            method_options={"temperature": 0.3},
        ),
        "killed": make_run(
            "c-killed", steps=4, ending=None, knn=False, ckpt=4, mtime=t + 120, image_size=48
        ),
    }


def runs_page(window, qtbot):  # noqa: ANN001, ANN201
    window.show_page("Runs")
    page = window.runs_page
    page.refresh()
    qtbot.waitUntil(lambda: not page.listing, timeout=20_000)
    return page


def test_history_is_read_from_run_folders(history: dict[str, Path]) -> None:
    (runs_dir() / "not-a-run").mkdir()  # no config.json: not listed
    broken = runs_dir() / "d-broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    runs = {r.name: r for r in list_runs(runs_dir())}
    assert set(runs) == {"a-finished", "b-failed", "c-killed", "d-broken"}
    a, b, c = runs["a-finished"], runs["b-failed"], runs["c-killed"]
    assert (a.state, a.steps_done, a.total_steps, a.final_loss) == (
        "finished",
        10,
        10,
        pytest.approx(2.1),
    )
    assert a.last_knn == pytest.approx(0.48) and not a.resumable
    assert (b.state, b.steps_done, b.checkpoint_step, b.message) == (
        "failed",
        3,
        2,
        "DivergedError: loss is nan",
    )
    assert (c.state, c.steps_done, c.last_knn, c.image_size) == (
        "stopped",
        4,
        None,
        48,
    )  # killed: resumable
    assert c.resumable and runs["d-broken"].state == "damaged"


def test_a_locked_run_is_running_and_cannot_be_deleted(history: dict[str, Path]) -> None:
    lock = RunLock(history["killed"]).acquire()  # as a trainer in this or another process holds it
    try:
        assert {r.name: r.state for r in list_runs(runs_dir())}["c-killed"] == "running"
        with pytest.raises(RunLockedError):
            delete_run(history["killed"])
        assert (history["killed"] / "metrics.jsonl").exists()
    finally:
        lock.release()
    assert {r.name: r.state for r in list_runs(runs_dir())}["c-killed"] == "stopped"
    with pytest.raises(ValueError, match="not a run folder"):
        delete_run(runs_dir())  # never a folder without config.json


def test_helpers() -> None:
    assert flatten_config({"a": 1, "optim": {"lr": 0.1}, "method_options": {}, "version": 1}) == {
        "a": 1,
        "optim.lr": 0.1,
        "method_options": {},
    }
    c = Curves(step=[0, 1, 2, 3], loss=__import__("numpy").array([4.0, 2.0, 4.0, 2.0]))
    assert list(c.smoothed_loss()) == [4.0, 2.0, 4.0, 2.0]  # 4 steps: a window of 1
    assert format_age(1_750_000_000.0, 1_750_000_000.0 + 60).startswith("today ")
    assert format_age(1_700_000_000.0, 1_750_000_000.0).startswith("2023-11-1")
    from sslstudio.gui.pages.runs.run_details import elide, setting_label

    assert setting_label("method_options.temperature") == "Method options: Temperature"
    assert (
        setting_label("optim.lr") == "Optimizer: Learning rate"  # as the Method page says it
        and setting_label("image_size") == "Image size"
    )
    assert elide("20261126-015807-simclr-sample_images", 24) == "20261126-015807-simclr-…"


def test_table_details_and_compare(window, qtbot, history: dict[str, Path]) -> None:
    page = runs_page(window, qtbot)
    m = page.proxy
    assert m.rowCount() == 3 and not page.empty_label.isVisible()
    cells = [[m.index(r, c).data() for c in range(m.columnCount())] for r in range(3)]
    assert [row[1] for row in cells] == ["c-killed", "b-failed", "a-finished"]  # newest first
    assert cells[2][2:] == ["simclr", "tiny_cnn", "32 px", "10 / 10", "2.1000", "48.0%", "finished"]
    assert cells[0][7] == "–" and cells[1][8] == "failed"

    page.select_paths([str(history["failed"])])
    qtbot.waitUntil(lambda: page.details.caption.text().startswith("Failed"), timeout=10_000)
    assert (
        "DivergedError" in page.details.caption.text()
        and "resumes from step 2" in page.details.caption.text()
    )
    assert (
        page.resume_button.isEnabled()
        and page.folder_button.isEnabled()
        and page.delete_button.isEnabled()
    )
    tree = page.settings_tree
    assert tree.columnCount() == 2 and tree.topLevelItem(0).text(0) == "Run"
    plots = page.details.run_plots  # one run: the Train page's plots, replayed from the log
    assert plots.isVisible() and not page.details.loss_plot.isVisible()
    assert len(plots.loss_plot.buffer("raw")) == 3 and len(plots.loss_plot.buffer("ema")) == 3
    assert len(plots.health_plot.buffer("knn")) == 2

    page.select_paths([str(history["failed"]), str(history["killed"])])
    qtbot.waitUntil(
        lambda: page.details.caption.text().startswith("Comparing 2 runs"), timeout=10_000
    )
    assert tree.columnCount() == 3 and [tree.headerItem().text(i) for i in (1, 2)] == ["A", "B"]
    assert tree.headerItem().toolTip(1) in (str(history["failed"]), str(history["killed"]))
    assert len(page.details.loss_plot.getPlotItem().listDataItems()) == 4
    assert page.details.loss_plot.isVisible() and not page.details.run_plots.isVisible()
    assert not page.resume_button.isEnabled() and not page.folder_button.isEnabled()
    first = tree.topLevelItem(0)
    assert first.text(0) == "Differences (2)" and first.isExpanded()
    assert {first.child(j).toolTip(0) for j in range(first.childCount())} == {
        "image_size",
        "method_options.temperature",
    }
    bold = {}
    for i in range(1, tree.topLevelItemCount()):
        section = tree.topLevelItem(i)
        assert not section.isExpanded()
        for j in range(section.childCount()):
            bold[section.child(j).toolTip(0)] = section.child(j).font(1).bold()
    assert bold["image_size"] and bold["method_options.temperature"] and not bold["backbone"]
    assert not QFont(tree.font()).bold()


def test_delete_asks_first_and_never_deletes_a_running_run(
    window, qtbot, history, monkeypatch
) -> None:
    page = runs_page(window, qtbot)
    answers = [QMessageBox.StandardButton.Cancel]
    asked: list[str] = []

    def question(parent, title, text, *args):  # noqa: ANN001, ANN202
        asked.append(text)
        return answers.pop(0)

    monkeypatch.setattr(QMessageBox, "question", question)
    page.select_paths([str(history["failed"])])
    page.delete_button.click()
    assert asked and "b-failed" in asked[0] and history["failed"].exists()  # cancelled: kept

    answers.append(QMessageBox.StandardButton.Yes)
    page.delete_button.click()
    # a delete and a relisting in worker threads: seconds on a loaded CI machine
    qtbot.waitUntil(lambda: not history["failed"].exists() and not page.listing, timeout=30_000)
    qtbot.waitUntil(lambda: page.proxy.rowCount() == 2, timeout=30_000)

    lock = RunLock(history["killed"]).acquire()
    try:
        page.refresh()
        qtbot.waitUntil(lambda: not page.listing, timeout=10_000)
        page.select_paths([str(history["killed"])])
        assert page.selected_runs()[0].state == "running"
        assert (
            not page.delete_button.isEnabled()
            and "cannot be deleted" in page.delete_button.toolTip()
        )
        page.delete_selected()  # even if called: nothing is asked, nothing deleted
        assert len(asked) == 2 and history["killed"].exists()
    finally:
        lock.release()


def test_open_run_adds_a_folder_from_elsewhere_and_open_folder(
    window, qtbot, tmp_path, monkeypatch
) -> None:
    elsewhere = make_run("my-run", root=tmp_path / "elsewhere", ending="finished")
    page = runs_page(window, qtbot)
    assert page.proxy.rowCount() == 0 and page.empty_label.isVisible()
    assert page.add_run(str(elsewhere))
    qtbot.waitUntil(
        lambda: page.proxy.rowCount() == 1 and page.selected_paths() == [str(elsewhere)],
        timeout=10_000,
    )
    assert window.settings.get("opened_runs", []) == [str(elsewhere)]
    opened: list[str] = []
    monkeypatch.setattr(
        "sslstudio.gui.pages.runs.page.QDesktopServices.openUrl",
        lambda url: opened.append(url.toLocalFile()),
    )
    page.folder_button.click()
    assert opened == [str(elsewhere)]
    assert not page.add_run(str(tmp_path))  # no config.json
    assert "Not a run folder" in page.error_box.windowTitle()
    page.error_box.close()


def test_resume_from_history_loads_the_config_and_continues(window, qtbot, monkeypatch) -> None:
    """A real run, stopped after 2 of 4 steps, resumed from the Runs page, then shown as
    finished."""
    from sslstudio.core.train.trainer import train

    cfg = RunConfig(
        data_root=str(sample_images_dir()),
        backbone="tiny_cnn",
        image_size=32,
        batch_size=16,
        epochs=1,
        max_steps=4,
        checkpoint_every=100,
        monitor_every=0,
        device="cpu",
        threads=1,
    )
    stop = threading.Event()
    for ev in train(cfg, stop=stop):
        if isinstance(ev, StepLogged) and ev.step == 1:
            stop.set()
    page = runs_page(window, qtbot)
    (run,) = page.model.runs()
    assert (run.state, run.steps_done, run.checkpoint_step) == ("stopped", 2, 2)
    assert window.method_page.run_form.values()["max_steps"] != 4
    events = collect(window)
    page.select_paths([run.path])
    qtbot.waitUntil(page.resume_button.isEnabled, timeout=10_000)
    page.resume_button.click()
    assert window.stack.currentWidget() is window.train_page
    assert (
        window.method_page.run_form.values()["max_steps"] == 4
    )  # the run's settings, in the pages
    assert window.method_page.run_form.values()["backbone"] == "tiny_cnn"
    qtbot.waitUntil(lambda: not window.controller.is_running(), timeout=60_000)
    started = next(e for e in events if isinstance(e, RunStarted))
    assert started.start_step == 2 and Path(started.run_dir) == Path(run.path)
    assert any(isinstance(e, RunFinished) for e in events)
    qtbot.waitUntil(
        lambda: not page.listing and page.model.runs()[0].state == "finished", timeout=10_000
    )
    assert page.model.runs()[0].steps_done == 4
