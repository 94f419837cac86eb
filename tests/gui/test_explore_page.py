"""The Explore page on a trained run over the bundled sample images."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PySide6.QtCore import Qt

from sslstudio.paths import sample_images_dir
from tests.gui.explore_helpers import open_explore_page
from tests.shapes import tiny_config


@pytest.fixture
def trained_sample_run(tmp_path):
    from sslstudio.core.train.trainer import train

    run = tmp_path / "run"
    for _ in train(
        tiny_config(sample_images_dir(), run, max_steps=2, monitor_every=0, image_size=24)
    ):
        pass
    return run


@pytest.fixture
def page(qtbot, themed_app, trained_sample_run):
    p = open_explore_page(qtbot, trained_sample_run)
    yield p
    p.shutdown()


def test_clicking_an_image_shows_it_as_the_query_and_its_neighbours_beside(page, qtbot):
    emb = page.session.emb
    assert len(emb) == 124 and page.all_model.rowCount() == 124
    idx = page.all_model.index(7)
    rect = page.all_grid.visualRect(idx)
    qtbot.mouseClick(page.all_grid.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    hits = page.browser.model
    assert hits.rowCount() == page.browser.k
    assert 7 not in hits.rows().tolist()  # the query is shown as the query, not a neighbour
    assert page.browser.query_path == str(emb.abspath(7))
    # neighbours of a neighbour, then back
    second = int(hits.rows()[0])
    page.browser.queryRequested.emit(second)
    assert page.browser.current()[0] == second and second not in hits.rows().tolist()
    page.browser.back_button.click()
    assert page.browser.current()[0] == 7


def test_similarities_are_ranked_and_coloured_so_near_and_far_differ(page):
    from sslstudio.gui.pages.explore.models import closeness_colour, top_share

    page.browser.k_spin.setValue(60)
    page.query_row(3)
    hits = page.browser.model
    captions = [hits.data(hits.index(i)) for i in range(hits.rowCount())]
    assert all("top " in c for c in captions)
    first, last = hits._close[0], hits._close[-1]
    assert first > 0.99 and last < 0.55  # 123 others: the 60 nearest span half the folder
    colours = {hits.data(hits.index(i), Qt.ItemDataRole.ForegroundRole).name() for i in (0, 59)}
    assert len(colours) == 2
    assert top_share(0.995) == "top 0.5 %" and top_share(0.5) == "top 50 %"
    assert closeness_colour(0.995) != closeness_colour(0.5)


def test_re_sorting_starts_at_the_top(page, qtbot):
    grid = page.all_grid
    grid.scrollToBottom()
    qtbot.waitUntil(lambda: grid.verticalScrollBar().value() > 0, timeout=5_000)
    page._fill_all()
    assert grid.verticalScrollBar().value() == 0


def test_duplicates_come_as_pairs_with_a_count(page, qtbot):
    from sslstudio.gui.pages.explore import session as session_module

    page.tabs.setCurrentIndex(3)
    page.dup_threshold.setValue(0.5)  # every neighbour pair of the 124 images
    page.dup_button.click()
    qtbot.waitUntil(lambda: page.dup_model.rowCount() > 0, timeout=30_000)
    found = page.session.pairs_found
    shown = page.dup_model.rowCount() // 2
    assert found > session_module.MAX_PAIRS and shown == session_module.MAX_PAIRS
    assert f"{found:,} pairs" in page.dup_count.text() and "most similar" in page.dup_count.text()
    assert page.tabs.tabText(3) == f"Duplicates ({found:,})"
    assert page.dup_grid.columns() % 2 == 0  # a pair never breaks across two rows
    assert page.dup_threshold.value() == 0.5
    # a pair shares one tinted band; plain background separates it from the next pair
    grid = page.dup_grid
    qtbot.waitUntil(lambda: grid.visualRect(page.dup_model.index(3, 0)).isValid(), timeout=5_000)
    image = grid.viewport().grab().toImage()
    second, third = (grid.visualRect(page.dup_model.index(i, 0)) for i in (1, 2))
    assert second.top() == third.top()  # both on the first row
    y = second.top() + 4
    inside = image.pixelColor(second.left(), y)  # where the pair's two cells meet
    gap = image.pixelColor(third.left() + 2, y)  # the next pair's outer margin
    base = grid.viewport().palette().color(grid.viewport().backgroundRole())
    assert gap.name() == base.name() and inside.name() != gap.name()


def test_the_map_offers_umap_only_when_it_is_installed(page):
    from sslstudio.gui.pages.explore.map_panel import umap_installed

    assert page.map_panel.umap_button.isVisibleTo(page.map_panel) == umap_installed()


def test_leaving_out_the_same_folder(page):
    emb = page.session.emb
    page.browser.group_combo.setCurrentText("Leave out the same folder or slide")
    page.query_row(0)
    folder = emb.paths[0].split("/")[0]
    assert all(not emb.paths[r].startswith(folder + "/") for r in page.browser.model.rows())


def test_outside_image_query_and_lists(page, qtbot, tmp_path):
    src = page.session.emb.abspath(5)
    outside = tmp_path / "query.png"
    outside.write_bytes(src.read_bytes())
    page.query_file(str(outside))
    qtbot.waitUntil(lambda: page.browser.current() == (-1, str(outside)), timeout=30_000)
    assert int(page.browser.model.rows()[0]) == 5
    page.outlier_button.click()
    qtbot.waitUntil(lambda: page.outlier_model.rowCount() > 0, timeout=30_000)
    assert page.outlier_model.rowCount() == 124  # all of them, least typical first
    scores = [
        float(page.outlier_model.data(page.outlier_model.index(i)).split(" ")[0])
        for i in range(124)
    ]
    assert scores == sorted(scores)


def test_map_selection_labels_and_predictions(page, qtbot, tmp_path):
    coords = page.session.coords
    assert coords.shape == (124, 2)
    x0, y0 = coords.min(0)
    x1, y1 = np.median(coords, 0)
    page.map.select_rect(float(x0), float(y0), float(x1), float(y1))
    inside = np.nonzero(
        (coords[:, 0] >= x0) & (coords[:, 0] <= x1) & (coords[:, 1] >= y0) & (coords[:, 1] <= y1)
    )[0]
    assert sorted(page._selected) == sorted(inside.tolist()) and page.all_model.rowCount() == len(
        inside
    )

    # label two classes from the folder's own classes: 3 images each
    emb = page.session.emb
    classes = emb.classes[:2]
    for c, name in enumerate(classes):
        page.labels.add_class(name)
        page._selected = np.nonzero(emb.labels == c)[0][:3].tolist()
        page.labels.assign_selected()
    assert page.session.labels.counts() == {classes[0]: 3, classes[1]: 3}
    assert page.labels.class_list.count() == 2
    page.labels.train()
    qtbot.waitUntil(lambda: page.session.predictions is not None, timeout=30_000)
    pred = page.session.predictions
    assert (
        pred.probs.shape == (124, 2)
        and "cross-validated accuracy" in page.labels.accuracy_label.text()
    )
    assert page.colour_combo.currentText() == "Prediction"
    # labels persist with the run, predictions export as CSV
    assert (page.session.run / "explore" / "labels.json").exists()
    page.session.export_predictions(str(tmp_path / "p.csv"))
    rows = list(csv.DictReader((tmp_path / "p.csv").open()))
    assert len(rows) == 124 and sum(1 for r in rows if r["user_label"]) == 6
    page.sort_combo.setCurrentIndex(1)  # least certain first: labelled images are not suggested
    labelled = set(page.session.labelled_rows()[0].tolist())
    assert not labelled & set(page.all_model.rows()[:20].tolist())


def test_predictions_follow_the_labels_as_they_are_added(page, qtbot):
    emb = page.session.emb
    assert page.labels.auto_check.isChecked()
    page.labels.add_class("a")
    page._selected = np.nonzero(emb.labels == 0)[0][:2].tolist()
    page.labels.assign_selected()
    qtbot.wait(600)
    assert page.session.predictions is None  # one class: nothing to train yet
    page.labels.add_class("b")
    page._selected = np.nonzero(emb.labels == 1)[0][:2].tolist()
    page.labels.assign_selected()
    qtbot.waitUntil(lambda: page.session.predictions is not None, timeout=30_000)
    assert "cross-validated accuracy" in page.labels.accuracy_label.text()
    first = page.labels.accuracy_label.text()
    page._selected = np.nonzero(emb.labels == 1)[0][2:4].tolist()
    page.labels.assign_selected()
    qtbot.waitUntil(lambda: "from 6 labels" in page.labels.accuracy_label.text(), timeout=30_000)
    assert page.labels.accuracy_label.text() != first


def test_shutdown_waits_for_replaced_jobs_too(page, qtbot):
    emb = page.session.emb
    for c in range(2):
        page.labels.add_class(f"c{c}")
        page._selected = np.nonzero(emb.labels == c)[0][:3].tolist()
        page.labels.assign_selected()
    qtbot.waitUntil(lambda: not page.session.is_busy(), timeout=30_000)
    page.session.train_classifier("linear")
    page.session.train_classifier("knn")  # replaces the first job, whose thread still runs
    jobs = list(page.session._alive)
    assert len(jobs) == 2
    page.shutdown()
    assert all(job.wait(0) for job in jobs)  # both threads have ended
