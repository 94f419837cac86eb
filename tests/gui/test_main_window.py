"""The main window: opens on the sample images, every step reachable, folders, settings, menus."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QAction, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import QApplication

from sslstudio.gui.main_window import STEPS, MainWindow
from sslstudio.paths import sample_images_dir, settings_path

SAMPLE_COUNT = 124  # resources/sample_images: 8 class folders


def test_opens_on_the_sample_images_and_scans_them(window, qtbot) -> None:
    window.open_initial(None)  # fresh settings: the bundled samples
    qtbot.waitUntil(lambda: window.data_page.index is not None, timeout=30_000)
    page = window.data_page
    assert Path(page.folder) == sample_images_dir()
    assert len(page.index.images) == SAMPLE_COUNT
    assert page.summary["images"].text() == str(SAMPLE_COUNT)
    assert page.summary["classes"].text().startswith("8 ")
    assert page.image_model.rowCount() == SAMPLE_COUNT
    assert (
        page.skipped_model.rowCount() == len(page.index.skipped) == 0
    )  # ATTRIBUTION.md is a document
    assert "1 non-image file" in page.summary["ignored"].text()
    assert not page.scan_row.isVisible() and not page.copy_button.isEnabled()
    qtbot.waitUntil(lambda: page.thumbnails.decoded > 0, timeout=10_000)  # thumbnails arrive


def test_every_step_is_reachable_and_placeholders_are_not(window) -> None:
    for i, name in enumerate(STEPS):
        window.steps.setCurrentRow(i)
        assert window.stack.currentWidget() is window.pages[i]
        window.show_page(name)
        assert window.stack.currentIndex() == i
    for row in range(len(STEPS), window.steps.count()):
        item = window.steps.item(row)
        assert "soon" in item.text() and not item.flags() & Qt.ItemFlag.ItemIsEnabled
    titles = [p.title_label.text() for p in window.pages]
    assert all(titles) and all(p.subtitle_label.text() for p in window.pages)


def test_menus_and_shortcuts(window) -> None:
    menus = [a.text().replace("&", "") for a in window.menuBar().actions()]
    assert menus == ["File", "Run", "Go", "Help"]
    assert window.start_action.shortcut().toString() == "Ctrl+R"
    assert window.stop_action.shortcut().toString() == "Ctrl+."
    a = window.actions_
    keys = {
        act.text().replace("&", ""): act.shortcut().toString()
        for act in (a.open_run, a.pause, a.estimate, a.copy_command, a.refresh_runs, *a.go)
    }
    assert keys == {
        "Open run…": "Ctrl+Shift+O",
        "Pause": "Ctrl+Shift+P",
        "Estimate time per epoch": "Ctrl+E",
        "Copy as command": "Ctrl+Shift+C",
        "Refresh runs": "F5",
        "1 Data": "Ctrl+1",
        "2 Augment": "Ctrl+2",
        "3 Method": "Ctrl+3",
        "4 Train": "Ctrl+4",
        "5 Runs": "Ctrl+5",
        "6 Explore": "Ctrl+6",
        "7 Export": "Ctrl+7",
    }
    shortcuts = [
        act.shortcut().toString()
        for act in window.findChildren(QAction)
        if not act.shortcut().isEmpty()
    ]
    assert len(shortcuts) == len(set(shortcuts))  # no key does two things
    assert (
        "(Ctrl+R)" in window.start_action.toolTip()
        and "(Ctrl+R)" in window.train_page.start_button.toolTip()
    )
    assert "(Ctrl+.)" in window.train_page.stop_button.toolTip()
    assert "(Ctrl+E)" in window.method_page.estimate_button.toolTip()
    a.go[4].trigger()
    assert window.stack.currentWidget() is window.runs_page
    assert not window.start_action.isEnabled()  # nothing scanned yet
    window.show_about()
    assert "Kather" in window.about_box.text() and "CC BY 4.0" in window.about_box.text()
    window.about_box.close()


def test_dropping_a_folder_opens_it(window, qtbot, image_folder: Path) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(image_folder))])
    enter = QDragEnterEvent(
        QPoint(50, 50),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    window.dragEnterEvent(enter)
    assert enter.isAccepted()
    drop = QDropEvent(
        QPointF(50, 50),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    window.dropEvent(drop)
    qtbot.waitUntil(lambda: window.data_page.index is not None, timeout=10_000)
    page = window.data_page
    assert page.folder == str(image_folder)
    assert len(page.index.images) == 6 and [f.path for f in page.index.skipped] == ["a/broken.png"]
    assert page.skipped_model.rowCount() == 1 and page.copy_button.isEnabled()
    page.copy_skipped()
    assert QApplication.clipboard().text().startswith("a/broken.png\t")
    assert window.settings.recent_folders()[0] == str(image_folder)
    window._fill_recent()
    assert [a.text() for a in window.recent_menu.actions()] == [str(image_folder)]


def test_a_file_is_not_a_droppable_folder(window, image_folder: Path) -> None:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(image_folder / "notes.txt"))])
    enter = QDragEnterEvent(
        QPoint(5, 5),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    enter.ignore()
    window.dragEnterEvent(enter)
    assert not enter.isAccepted()


def test_a_missing_folder_says_why(window, qtbot, tmp_path: Path) -> None:
    window.open_folder(tmp_path / "nope")
    qtbot.waitUntil(lambda: not window.data_page.is_scanning, timeout=10_000)
    assert "does not exist" in window.data_page.banner.text()
    assert not window.train_page.start_button.isEnabled()


def test_cancel_a_scan(window, qtbot) -> None:
    window.open_folder(sample_images_dir())
    window.data_page.cancel_scan()
    assert not window.data_page.is_scanning and window.data_page.index is None
    qtbot.wait(300)
    assert window.data_page.index is None  # the cancelled scan's result never lands


def test_method_page_fills_in_when_the_engine_is_loaded(ready_window) -> None:
    page = ready_window.method_page
    names = [
        page.method_list.item(i).data(Qt.ItemDataRole.UserRole)
        for i in range(page.method_list.count())
    ]
    assert "simclr" in names and page.options_form is not None
    assert "temperature" in page.options_form.field_names
    backbones = page.run_form.control("backbone")
    assert "tiny_cnn" in [backbones.itemText(i) for i in range(backbones.count())]
    assert page.device_label.text().startswith("Will train on:")
    assert ready_window.device_status.text().startswith("Device:")
    xs, ys = page.schedule_curve.getData()
    assert len(xs) > 0 and max(ys) > 0
    assert "124 images" in page.schedule_caption.text()
    # the default is a time limit: the schedule spans its minutes, not the 100-epoch fallback
    assert page.model.config.time_budget_s == 600 and not page.model.config.max_steps
    assert xs[-1] == pytest.approx(10.0) and ys[-1] == pytest.approx(min(ys))
    assert "10-minute limit" in page.schedule_caption.text()
    assert page.schedule_plot.getPlotItem().getAxis("bottom").labelText == "minute"
    page.run_form.control("epochs").setValue(3)
    xs, _ = page.schedule_curve.getData()
    assert "3 epochs" in page.schedule_caption.text() and xs[-1] < 3 * 124
    assert page.schedule_plot.getPlotItem().getAxis("bottom").labelText == "step"
    page.copy_command()
    cmd = QApplication.clipboard().text()
    assert cmd.startswith("sslstudio train ") and "--method simclr" in cmd and "--epochs 3" in cmd
    assert str(sample_images_dir()) in cmd
    assert (
        ready_window.train_page.start_button.isEnabled() and ready_window.start_action.isEnabled()
    )


def test_choices_and_folder_persist_across_sessions(
    ready_window, qtbot, image_folder: Path
) -> None:
    w = ready_window
    w.open_folder(image_folder)  # a new folder sets its own preset: the choices come after
    qtbot.waitUntil(lambda: w.data_page.index is not None, timeout=10_000)
    w.method_page.run_form.control("epochs").setValue(7)
    w.method_page.run_form.control("backbone").setCurrentText("tiny_cnn")
    w.method_page.options_form.control("temperature").setValue(0.3)
    w.augment_page.preset_combo.setCurrentText("microscopy")
    w.close()
    saved = json.loads(settings_path().read_text())
    assert saved["last_folder"] == str(image_folder) and saved["geometry"]

    again = MainWindow()
    qtbot.addWidget(again)
    again.open_initial(None)
    assert again.data_page.folder == str(image_folder)  # the last folder, not the samples
    qtbot.waitUntil(
        lambda: again.catalog is not None and again.data_page.index is not None, timeout=30_000
    )
    cfg = again.config_model.config
    assert (cfg.epochs, cfg.backbone, cfg.preset) == (7, "tiny_cnn", "microscopy")
    assert cfg.method_options["temperature"] == 0.3
    assert dataclasses.replace(cfg, threads=0).data_root == str(image_folder)
    again.close()


def _in_focus_order(start, widgets) -> bool:  # noqa: ANN001
    chain, w = [], start
    for _ in range(400):  # every widget of the window is in the chain, focusable or not
        chain.append(w)
        w = w.nextInFocusChain()
        if w is start:
            break
    positions = [chain.index(x) for x in widgets]
    return positions == sorted(positions)


def test_tab_order_follows_each_page(window) -> None:
    t, m, r = window.train_page, window.method_page, window.runs_page
    assert _in_focus_order(
        t.start_button, [t.start_button, t.pause_button, t.resume_button, t.stop_button, t.log]
    )
    assert _in_focus_order(
        m.method_list,
        [
            m.method_list,
            m.options_scroll,
            m.run_form,
            m.estimate_button,
            m.copy_button,
            m.optim_form,
        ],
    )
    assert _in_focus_order(
        r.refresh_button,
        [
            r.refresh_button,
            r.open_button,
            r.table,
            r.resume_button,
            r.folder_button,
            r.delete_button,
        ],
    )
    assert (
        r.delete_action.shortcut().matches(QKeySequence(QKeySequence.StandardKey.Delete))
        == QKeySequence.SequenceMatch.ExactMatch
    )


def test_a_big_folder_shows_sizes_from_a_sample_and_reopens_from_the_stored_scan(
    window, qtbot, tmp_path, monkeypatch
) -> None:
    from PIL import Image

    from sslstudio.core.data import indexstore, scan

    folder = tmp_path / "big"
    folder.mkdir()
    for i in range(30):
        Image.new("RGB", (20 + i, 40), (i * 8, 90, 120)).save(folder / f"{i:03d}.png")
    monkeypatch.setattr(scan, "HEADER_LIMIT", 8)  # a "big" folder of 30: most sizes read lazily
    real_scan = indexstore.scan_folder
    scans: list[int] = []

    def counted(*args, **kwargs):
        scans.append(1)
        return real_scan(*args, **{**kwargs, "header_limit": 8})

    monkeypatch.setattr(indexstore, "scan_folder", counted)
    page = window.data_page
    page.open_folder(str(folder))
    qtbot.waitUntil(lambda: page.index is not None, timeout=30_000)
    assert page.summary["images"].text() == "30"
    assert page.index.unread == 0 < len(scans)  # the Data page read a sample: 30 < 2000, all
    assert page.summary["sizes"].text() == "20 × 40 to 49 × 40 px"
    page.open_folder(str(folder))  # re-open: the stored scan, not a new one
    qtbot.waitUntil(lambda: page.index is not None, timeout=30_000)
    assert len(scans) == 1 and len(page.index.images) == 30
    page.rescan_button.click()  # Rescan lists the folder again
    qtbot.waitUntil(lambda: page.index is not None and len(scans) == 2, timeout=30_000)


def test_scan_progress_counts_files_while_listing_then_images_checked(window) -> None:
    page = window.data_page
    page.progress.setRange(0, 0)  # as open_folder leaves it: busy
    page._on_progress(page._job, 12_345, -1)  # walking: no total yet
    assert page.scan_status.text() == "12,345 files listed" and page.progress.maximum() == 0
    page._on_progress(page._job, 5, 40)  # headers being read: a bar with its own text
    assert page.scan_status.text() == "" and page.progress.maximum() == 40
    assert page.progress.value() == 5 and "of" in page.progress.format()
    page._on_progress(page._job - 1, 99, 100)  # a replaced scan's progress is ignored
    assert page.progress.value() == 5
