"""One vocabulary: the Runs and Export pages name settings, counts and checkpoints as the
Method, Augment and Train pages do."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel

from sslstudio.gui.pages.augment.page import LABELS as AUGMENT_PAGE_LABELS
from sslstudio.gui.pages.method.page import RUN_LABELS as METHOD_PAGE_LABELS
from sslstudio.gui.pages.runs.run_details import RunDetailsView
from sslstudio.gui.run.history import load_details
from sslstudio.gui.widgets import words
from tests.gui.test_runs_page import make_run


def test_the_shared_labels_are_the_forms_labels() -> None:
    assert words.RUN_LABELS == METHOD_PAGE_LABELS
    assert words.AUGMENT_LABELS == AUGMENT_PAGE_LABELS


def test_the_method_pages_optimiser_card_uses_the_shared_labels(window) -> None:  # noqa: ANN001
    form = window.method_page.optim_form
    shown = {label.text() for label in form.findChildren(QLabel)}
    assert set(words.OPTIM_LABELS.values()) <= shown


def test_counts_shares_and_checkpoints_read_one_way() -> None:
    assert words.count(1, "image") == "1 image" and words.count(3619, "image") == "3,619 images"
    assert words.share(0.153) == "15.3%" and words.share(1.0) == "100%"
    assert words.checkpoint_label("best", 1200).startswith("Best checkpoint (step 1,200)")
    assert words.BEST_MEANS in words.checkpoint_label("best", 1)
    assert words.checkpoint_label("final", 40) == "Final checkpoint (step 40)"
    assert words.checkpoint_label("step_0001000", 1000) == "Step 1,000"


def test_the_runs_page_lists_settings_by_the_forms_labels(qtbot) -> None:  # noqa: ANN001
    run = make_run("labelled", ending="finished")
    view = RunDetailsView()
    qtbot.addWidget(view)
    view.show_runs([load_details(run)])
    rows = {}
    tree = view.settings_tree
    for i in range(tree.topLevelItemCount()):
        section = tree.topLevelItem(i)
        for j in range(section.childCount()):
            rows[section.child(j).toolTip(0)] = section.child(j).text(0)
    assert rows["monitor_every"] == "Health check every"
    assert rows["small_stem"] == "Small-image stem"
    assert rows["optim.lr"] == "Learning rate"
    assert rows["augment.hflip_p"] == "Horizontal flip"
