"""The Export page: choose a run and checkpoint, export in the background, see what was written."""

from __future__ import annotations

import json
from pathlib import Path

from sslstudio.gui.pages.export.page import ExportPage
from sslstudio.gui.run.controller import RunController
from sslstudio.gui.settings import Settings
from tests.core.test_export import make_trained_run


def test_export_page_writes_a_bundle_and_shows_it(qtbot, themed_app, tmp_path: Path) -> None:
    run = make_trained_run(tmp_path)
    page = ExportPage(RunController(), Settings())
    qtbot.addWidget(page)
    page.resize(1000, 700)
    page.show()
    assert not page.export_button.isEnabled()  # no run chosen yet
    page.set_run(str(run))
    qtbot.waitUntil(
        lambda: page.selected_run() == str(run) and page.checkpoint_combo.count() > 1,
        timeout=20_000,
    )
    names = [page.checkpoint_combo.itemData(i) for i in range(page.checkpoint_combo.count())]
    assert names[:2] == ["latest", "final"] and "step_0000004" in names
    page.checkpoint_combo.setCurrentIndex(names.index("step_0000004"))
    assert page.warning.objectName() == "hint" and "patient identifiers" in page.warning.text()
    page.absolute_box.setChecked(True)
    assert page.warning.objectName() == "warning" and "absolute path" in page.warning.text()
    page.absolute_box.setChecked(False)
    page.out_edit.setText(str(tmp_path / "bundle"))

    page.export_button.click()
    assert page.exporting and page.cancel_button.isEnabled() and not page.export_button.isEnabled()
    qtbot.waitUntil(lambda: not page.exporting, timeout=120_000)
    assert page.status.text() == f"Exported to {tmp_path / 'bundle'}", page.status.text()
    bundle = tmp_path / "bundle"
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["training"]["checkpoint"] == "step_0000004"
    table = [page.result.files.item(r, 0).text() for r in range(page.result.files.rowCount())]
    assert table == ["manifest.json", *sorted(manifest["files"])]
    assert all((bundle / name).is_file() for name in table)
    assert page.result.files.item(1, 1).text().endswith("KB")
    summary = page.result.text.text()
    assert "24 images indexed, 128-d features, 16 px input" in summary
    assert "no family format: tiny_cnn" in summary and "ONNX opset 18" in summary
    assert "the ONNX model gives the features PyTorch gives" in summary
    assert page.result.open_button.isEnabled() and page.result.title.text().startswith(
        "Result: bundle ("
    )
    page.shutdown()


def test_export_page_reports_a_failure(qtbot, themed_app, tmp_path: Path) -> None:
    run = make_trained_run(tmp_path)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    page = ExportPage(RunController(), Settings())
    qtbot.addWidget(page)
    page.set_run(str(run))
    qtbot.waitUntil(lambda: page.selected_run() == str(run), timeout=20_000)
    page.out_edit.setText(str(tmp_path / "taken"))
    page.start_export()
    qtbot.waitUntil(lambda: not page.exporting, timeout=60_000)
    assert page.status.objectName() == "warning"
    assert (
        "not an SSL Studio bundle" in page.status.text() and not page.result.open_button.isEnabled()
    )
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine"
    page.shutdown()
