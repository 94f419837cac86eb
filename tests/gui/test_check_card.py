"""The Data page's check folder and the Train page's sentence about it (issue 23)."""

from __future__ import annotations

from pathlib import Path

from sslstudio.core.events import MonitorLogged
from sslstudio.gui.pages.data.check_card import NEEDS_CLASSES, UNSET
from sslstudio.gui.pages.train.run_text import verdict_sentence

COMMON = {"std_sqrt_d": 0.8, "rankme": 40.0, "embed_dim": 64}


def _checked(step: int, sign: int | None, score: float = 0.72) -> MonitorLogged:
    return MonitorLogged(
        step=step,
        verdict_sign=sign,
        check_top1=score,
        check_ref=None if sign is None else 0.64,
        check_noise=0.04,
        check_n=200,
        shift_top1=0.3,  # the in-run guess is there too; the measured check speaks
        shift_ref=0.5,
        shift_noise=0.02,
        **COMMON,
    )


def test_the_sentence_speaks_of_the_check_images_when_there_are_some() -> None:
    first = _checked(0, None)
    better = verdict_sentence(_checked(50, 1), first)
    assert better.startswith("It is learning") and "200 check images from other slides" in better
    assert "72%" in better and "64%" in better and "30%" not in better
    worse = verdict_sentence(_checked(50, -1, 0.55), first, finished=True)
    assert worse.startswith("Worse than the untrained network on new slides") and "Retrain" in worse
    unsure = verdict_sentence(_checked(50, 0, 0.66), first, finished=True)
    assert unsure.startswith("Cannot tell yet") and "More check images would tell" in unsure


def _classes(root: Path, names: tuple[str, ...]) -> Path:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(1)
    for name in names:
        (root / name).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(
                root / name / f"{i}.png"
            )
    return root


def test_the_card_sets_the_check_folder_and_says_what_it_checks(
    window, qtbot, image_folder: Path, tmp_path: Path
) -> None:
    page = window.data_page
    card = page.check_card
    window.open_folder(image_folder)  # classes a and b
    qtbot.waitUntil(lambda: page.index is not None, timeout=10_000)
    assert card.classes == ["a", "b"] and not card.clear_button.isVisibleTo(card)
    new = _classes(tmp_path / "new", ("a", "b", "c"))
    card.chosen.emit(str(new))
    assert window.config_model.config.check_folder == str(new)
    assert card.folder_label.text() == str(new) and card.clear_button.isVisibleTo(card)
    assert card.status.text() == "Checks a, b; c left out (not a class here)."
    one = _classes(tmp_path / "one", ("a", "z"))
    card.chosen.emit(str(one))
    assert card.status.text().startswith("Only 1 of its subfolders is a class here (a, b)")
    card.clear_button.click()
    assert window.config_model.config.check_folder == ""
    assert card.folder_label.text() == UNSET and card.status.text() == ""
    assert not card.status.isVisibleTo(card)
    # a training folder without classes: the check cannot run, and the card says why
    flat = tmp_path / "flat"
    flat.mkdir()
    for p in (image_folder / "a").glob("*.png"):
        (flat / p.name).write_bytes(p.read_bytes())
    window.open_folder(flat)
    qtbot.waitUntil(lambda: page.index is not None and page.folder == str(flat), timeout=10_000)
    card.chosen.emit(str(new))
    assert card.status.text() == NEEDS_CLASSES


def test_the_health_plot_draws_the_check_beside_the_other_scores(qtbot, themed_app) -> None:  # noqa: ANN001
    from sslstudio.gui.widgets.run_plots import RunPlots

    plots = RunPlots()
    qtbot.addWidget(plots)
    plain = MonitorLogged(step=0, **COMMON)
    plots.on_event(plain)
    assert len(plots.health_plot.buffer("check")) == 0  # no check folder: no such curve
    for ev in (_checked(0, None, 0.60), _checked(20, 1, 0.72)):
        plots.on_event(ev)
    got = plots.health_plot.buffer("check")
    assert len(got) == 2
