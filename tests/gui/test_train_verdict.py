"""The Train page leads with a plain verdict, offers Explore when a run finished, and Resume
after a restart when the last run can go on."""

from __future__ import annotations

from PySide6.QtCore import Qt

from sslstudio.core.events import MonitorLogged, RunFinished, RunStarted
from sslstudio.gui.pages.train.page import BEFORE_RUN
from sslstudio.gui.pages.train.run_text import verdict_sentence
from tests.gui.test_runs_page import make_run

COMMON = {"std_sqrt_d": 0.8, "rankme": 40.0, "embed_dim": 64}


def check(step: int, sign: int | None = None, **kw: object) -> MonitorLogged:
    if sign is not None:
        kw = {"shift_top1": 0.55, "shift_ref": 0.45, "shift_noise": 0.03, **kw}
    return MonitorLogged(step=step, verdict_sign=sign, **COMMON, **kw)


def test_the_sentence_says_better_worse_or_unsure_with_the_numbers() -> None:
    better = verdict_sentence(check(50, 1), check(0))
    assert better.startswith("It is learning") and "55%" in better and "45%" in better
    assert better.endswith("Keep going.")
    worse = verdict_sentence(check(50, -1, shift_top1=0.3), check(0))
    assert worse.startswith("Not better than the untrained network") and "30%" in worse
    near = verdict_sentence(check(50, 0, shift_top1=0.46), check(0))  # within the noise
    assert near.startswith("Too early to tell") and "within chance" in near
    over = verdict_sentence(check(50, 0, shift_top1=0.46), check(0), finished=True)
    assert over.startswith("Not clearly better") and "longer run" in over
    # a gap beyond the noise that the check may not call (H&E): never "within chance"
    unsure = verdict_sentence(check(50, 0), check(0))
    assert unsure.startswith("Cannot tell how it will do on new images") and "55%" in unsure
    assert "within chance" not in unsure and "Explore" in unsure and "check folder" in unsure
    done = verdict_sentence(check(50, 1), check(0), finished=True)
    assert done.startswith("It learned") and "Keep going" not in done


def test_without_a_verdict_the_score_is_compared_with_step_0() -> None:
    first = check(0, knn_top1=0.40)
    assert "untrained network" in verdict_sentence(first, first)
    text = verdict_sentence(check(30, knn_top1=0.62), first)
    assert text.startswith("It is learning") and "62%" in text and "40%" in text
    flat = verdict_sentence(check(30, view_top1=0.21), check(0, view_top1=0.2))
    assert flat.startswith("No clear progress yet")


def test_a_collapse_after_step_0_is_said_first() -> None:
    ev = MonitorLogged(step=40, std_sqrt_d=0.01, rankme=1.0, embed_dim=64, warning="collapse")
    assert verdict_sentence(ev, None).startswith("Something is wrong")


def test_the_page_leads_with_the_verdict_and_offers_explore_when_finished(
    window,  # noqa: ANN001
    qtbot,  # noqa: ANN001
    monkeypatch,  # noqa: ANN001
) -> None:
    page = window.train_page
    assert page.verdict_label.text() == BEFORE_RUN
    assert all(not plot.placeholder.isHidden() for plot in page.plots)  # no empty 0-1 axes
    assert not page.explore_button.isVisibleTo(page)
    run = str(make_run("finished-run", ending=None))
    window.controller.run_dir = run
    page.on_event(RunStarted(run, "cpu", 100, 10, 8, 0, 50, (0.1,) * 100))
    page.on_event(check(0, knn_top1=0.4))
    page.on_event(check(50, 1))
    page.redraw_now()
    assert page.verdict_label.text().startswith("It is learning")
    assert page.health_plot.placeholder.isHidden()
    page.on_event(RunFinished(99, f"{run}/checkpoints/final", 2.0))
    window.controller._outcome = "finished"
    window.controller.runEnded.emit("finished")
    assert page.verdict_label.text().startswith("Finished. It learned")
    assert page.explore_button.isVisibleTo(page)

    opened: list[str] = []
    monkeypatch.setattr(window.explore_page.session, "open_run", opened.append)
    qtbot.mouseClick(page.explore_button, Qt.MouseButton.LeftButton)
    assert window.stack.currentWidget() is window.explore_page
    assert opened == [run] and window.explore_page.run_combo.currentData() == run


def test_after_a_restart_resume_continues_the_last_stopped_run(qtbot, themed_app) -> None:  # noqa: ANN001
    from sslstudio.gui.main_window import MainWindow

    make_run("older", ending="finished", mtime=1.0)
    run = make_run("stopped", ending="stopped", ckpt=3)
    w = MainWindow()
    qtbot.addWidget(w)
    assert w.train_page.resume_button.isEnabled()
    assert w.controller.resumable == str(run)
    asked: list[str] = []
    w.train_page.resumeRequested.disconnect(w.continue_run)  # no real run here
    w.train_page.resumeRequested.connect(asked.append)
    w.train_page.resume_button.click()
    assert asked == [str(run)]


def test_after_a_restart_a_finished_last_run_offers_no_resume(qtbot, themed_app) -> None:  # noqa: ANN001
    from sslstudio.gui.main_window import MainWindow

    make_run("done", ending="finished")
    w = MainWindow()
    qtbot.addWidget(w)
    assert not w.train_page.resume_button.isEnabled()
