"""Step 7, Export: write a run's bundle (docs/bundle-format.md) for use outside SSL Studio.

A thin view over :func:`sslstudio.core.export.bundle.export_bundle`, which runs on a worker
thread; the page lists the runs it can export, their checkpoints, and afterwards what was written.
"""

from __future__ import annotations

import threading
import time
import traceback
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QWidget,
)

from sslstudio.gui.pages.export.bundle_summary import BundleSummary
from sslstudio.gui.run.controller import RunController
from sslstudio.gui.run.worker import FunctionWorker, ThreadJob, user_message
from sslstudio.gui.settings import Settings
from sslstudio.gui.widgets.panels import Card, Page, hbox, hint
from sslstudio.gui.widgets.words import checkpoint_label, count
from sslstudio.paths import runs_dir

LATEST = "Latest good checkpoint"
STAGE_TEXT = {
    "model": "Loading the checkpoint…",
    "onnx": "Converting to ONNX and checking it against PyTorch…",
    "embedding": "Indexing the training images…",
    "writing": "Writing the files…",
}
PRIVACY = (
    "File and folder names may carry patient identifiers or other personal data: the bundle lists "
    "every image's path inside the folder (items.json). Check them before you share a bundle."
)


class ExportWorker(QObject):
    """Runs :func:`export_bundle` once; progress is throttled to ~20 Hz."""

    progress = Signal(str, int, int)  # stage, done, total
    done = Signal(object, object)  # bundle path, manifest
    failed = Signal(str)
    cancelled = Signal()
    finished = Signal()

    def __init__(self, run: str, out: str, options: dict[str, Any]) -> None:
        super().__init__()
        self._run, self._out, self._options = run, out, options
        self.cancel_event = threading.Event()  # set from the GUI thread directly
        self._last = 0.0
        self.details = ""

    @Slot()
    def run(self) -> None:
        try:
            from sslstudio.core.export.bundle import ExportCancelled, export_bundle, read_manifest

            try:
                out = export_bundle(
                    self._run,
                    self._out,
                    progress=self._on_progress,
                    cancel=self.cancel_event,
                    **self._options,
                )
            except ExportCancelled:
                self.cancelled.emit()
                return
            self.done.emit(out, read_manifest(out))
        except Exception as exc:  # surfaced on the page, never swallowed
            self.details = traceback.format_exc()
            self.failed.emit(user_message(exc))
        finally:
            self.finished.emit()

    def _on_progress(self, stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self._last >= 0.05 or done >= total:
            self._last = now
            self.progress.emit(stage, done, total)


class ExportPage(Page):
    """``exported(path)`` when a bundle has been written."""

    exported = Signal(str)

    def __init__(
        self, controller: RunController, settings: Settings, parent: QWidget | None = None
    ) -> None:
        super().__init__(
            "Export",
            "Write a bundle other programs can use without SSL Studio or PyTorch: the model as "
            "ONNX, its weights, and an index of the training images for search and classification.",
            parent,
        )
        self.controller = controller
        self.settings = settings
        self._jobs: list[ThreadJob] = []
        self._listings = 0  # runs listings started; answers of older ones are dropped
        self._worker: ExportWorker | None = None
        self._want_run: str | None = None
        self._listed_at = 0.0
        self.listing = False  # tests wait on these
        self.exporting = False
        choose = self._build_choice()
        choose.layout_.addLayout(self._build_actions())
        choose.add(self.progress)
        self.body.addWidget(choose)
        self.result = BundleSummary()
        self.body.addWidget(self.result, 1)

        controller.runEnded.connect(self._on_run_ended)
        self._update_warning()
        self._update_buttons()

    def _build_choice(self) -> Card:
        """Which run and checkpoint, where to, and how."""
        self.run_combo = QComboBox()
        self.run_combo.setObjectName("exportRun")
        self.run_combo.setMinimumContentsLength(28)
        self.run_combo.currentIndexChanged.connect(self._on_run_chosen)
        self.browse_run = QPushButton("Open run…")
        self.browse_run.setToolTip("Export a run folder from elsewhere")
        self.browse_run.clicked.connect(self._choose_run)
        self.checkpoint_combo = QComboBox()
        self.checkpoint_combo.setToolTip("Which saved state of the run to export")
        self.out_edit = QLineEdit()
        self.out_edit.setPlaceholderText("folder the bundle is written to")
        self.browse_out = QPushButton("Choose…")
        self.browse_out.clicked.connect(self._choose_out)
        self.zip_box = QCheckBox("One .zip file instead of a folder")
        self.absolute_box = QCheckBox("Store the image folder's absolute path")
        self.absolute_box.setToolTip(
            "Lets a program on this machine open the images; reveals the folder path"
        )
        self.absolute_box.toggled.connect(self._update_warning)
        self.family_box = QCheckBox("Also write a torchvision / timm weights file")
        self.family_box.setToolTip(
            "A second copy of the weights in the layout torchvision or timm loads directly "
            "(where the network has one). model.onnx and backbone.safetensors share one copy"
        )
        for box in (self.zip_box, self.absolute_box, self.family_box):
            # the cards' "background: transparent" rule hides an unchecked box's frame; "none"
            # keeps it
            box.setStyleSheet("QCheckBox { background: none; }")
        self.warning = QLabel(PRIVACY)
        self.warning.setWordWrap(True)

        form = QFormLayout()
        form.setHorizontalSpacing(16)
        form.setVerticalSpacing(8)
        run_row = hbox(self.run_combo, self.browse_run)
        run_row.setStretch(0, 1)
        form.addRow("Run", run_row)
        form.addRow("Checkpoint", self.checkpoint_combo)
        form.addRow("Output", hbox(self.out_edit, self.browse_out))
        form.addRow("", self.zip_box)
        form.addRow("", self.absolute_box)
        form.addRow("", self.family_box)
        choose = Card("What to export")
        choose.layout_.addLayout(form)
        choose.add(self.warning)
        return choose

    def _build_actions(self) -> QHBoxLayout:
        """The status line and the Export / Cancel buttons (the progress bar goes under them)."""
        self.export_button = QPushButton("Export")
        self.export_button.setObjectName("primary")
        self.export_button.clicked.connect(self.start_export)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel_export)
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setObjectName("thin")
        self.progress.setTextVisible(False)
        self.progress.setVisible(False)  # only while exporting
        self.status = hint("")
        status_row = hbox(self.status, self.cancel_button, self.export_button)
        status_row.setStretch(0, 1)
        return status_row

    # -- runs and checkpoints -----------------------------------------------------------------

    @Slot()
    def refresh(self) -> None:
        """List the runs in the background; the chosen one stays chosen."""
        from sslstudio.gui.run.history import list_runs

        self.listing = True
        self._listed_at = time.monotonic()
        root = runs_dir()
        extra = tuple(f for f in self.settings.get("opened_runs", []) if isinstance(f, str))
        if self._want_run:
            extra = (*extra, self._want_run)
        self._listings += 1  # only the newest listing's answer is shown: an older one may be stale
        self._start(lambda: list_runs(root, extra), ("runs", self._listings))

    @Slot(str)
    def _on_run_ended(self, _outcome: str) -> None:
        if self.controller.run_dir and not self.exporting:
            self._want_run = self.controller.run_dir  # the run just trained is the likely export
        self.refresh()

    def set_run(self, path: str) -> None:
        """Choose this run folder (listed on the next refresh if it is new)."""
        self._want_run = str(path)
        for i in range(self.run_combo.count()):
            if _same(self.run_combo.itemData(i), path):
                self.run_combo.setCurrentIndex(i)
                return
        self.refresh()

    def selected_run(self) -> str | None:
        return self.run_combo.currentData()

    def _show_runs(self, runs: list[Any]) -> None:
        want = self._want_run or self.selected_run() or self.controller.run_dir
        usable = [r for r in runs if r.checkpoint_step is not None]
        self.run_combo.blockSignals(True)
        self.run_combo.clear()
        for r in usable:
            what = f"{r.method} · {r.backbone} · {count(r.steps_done, 'step')}"
            self.run_combo.addItem(f"{r.name}  ({what})", r.path)
        match = next((i for i, r in enumerate(usable) if want and _same(r.path, want)), 0)
        self.run_combo.setCurrentIndex(match if usable else -1)
        self.run_combo.blockSignals(False)
        self.listing = False
        if not usable:
            self.status.setText("No run has a checkpoint yet: train one on the Train page first.")
        self._on_run_chosen()

    @Slot()
    def _on_run_chosen(self, *_: object) -> None:
        run = self.selected_run()
        self.checkpoint_combo.clear()
        if run is None:
            self._update_buttons()
            return
        self._want_run = run
        self.out_edit.setText(str(runs_dir().parent / "exports" / Path(run).name))
        self.checkpoint_combo.addItem(LATEST, "latest")
        self._start(lambda: _checkpoints(run), ("checkpoints", run))
        self._update_buttons()

    def _choose_run(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a run folder", str(runs_dir()))
        if folder:
            self.set_run(folder)

    def _choose_out(self) -> None:
        start = self.out_edit.text() or str(Path.home())
        folder = QFileDialog.getExistingDirectory(
            self, "Export into a folder", str(Path(start).parent)
        )
        if folder and self.selected_run():
            self.out_edit.setText(str(Path(folder) / Path(self.selected_run()).name))

    # -- export -------------------------------------------------------------------------------

    @Slot()
    def start_export(self) -> None:
        run, out = self.selected_run(), self.out_edit.text().strip()
        if self.exporting or not run or not out:
            return
        options = {
            "checkpoint": self.checkpoint_combo.currentData() or "latest",
            "zip": self.zip_box.isChecked(),
            "absolute_paths": self.absolute_box.isChecked(),
            "family_formats": self.family_box.isChecked(),
        }
        worker = ExportWorker(run, out, options)
        worker.progress.connect(self._on_progress)
        worker.done.connect(self._on_exported)
        worker.failed.connect(self._on_export_failed)
        worker.cancelled.connect(self._on_cancelled)
        self._worker = worker
        self.exporting = True
        self.progress.setRange(0, 0)  # busy until the first stage reports
        self.progress.setVisible(True)
        self.status.setObjectName("hint")
        self.status.setText("Starting…")
        job = ThreadJob(worker, "sslstudio-export", self)
        job.ended.connect(self._on_job_ended)
        self._jobs.append(job)
        self._update_buttons()

    @Slot()
    def cancel_export(self) -> None:
        if self._worker is not None:
            self._worker.cancel_event.set()
            self.status.setText("Cancelling…")

    @Slot(str, int, int)
    def _on_progress(self, stage: str, done: int, total: int) -> None:
        self.status.setText(STAGE_TEXT.get(stage, stage))
        if stage == "embedding" and total > 1:
            self.progress.setRange(0, total)
            self.progress.setValue(done)
        else:
            self.progress.setRange(0, 0)

    @Slot(object, object)
    def _on_exported(self, path: Path, manifest: dict[str, Any]) -> None:
        self._finish(f"Exported to {path}")
        self.result.show_bundle(Path(path), manifest)
        self.exported.emit(str(path))

    @Slot(str)
    def _on_export_failed(self, message: str) -> None:
        self._finish(f"Export failed: {message}", error=True)

    @Slot()
    def _on_cancelled(self) -> None:
        self._finish("Export cancelled; nothing was written.")

    def _finish(self, text: str, error: bool = False) -> None:
        self.exporting = False
        self._worker = None
        self.progress.setVisible(False)
        self.status.setObjectName("warning" if error else "hint")
        self.status.style().polish(self.status)  # the object name picks the style sheet rule
        self.status.setText(text)
        self._update_buttons()

    # -- plumbing -----------------------------------------------------------------------------

    def _update_warning(self, *_: object) -> None:
        extra = (
            " The absolute path of the folder is stored too."
            if self.absolute_box.isChecked()
            else ""
        )
        self.warning.setText(PRIVACY + extra)
        self.warning.setObjectName("warning" if self.absolute_box.isChecked() else "hint")
        self.warning.style().polish(self.warning)

    def _update_buttons(self) -> None:
        idle = not self.exporting
        self.export_button.setEnabled(idle and self.selected_run() is not None)
        self.cancel_button.setEnabled(not idle)
        for w in (
            self.run_combo,
            self.browse_run,
            self.checkpoint_combo,
            self.out_edit,
            self.browse_out,
            self.zip_box,
            self.absolute_box,
            self.family_box,
        ):
            w.setEnabled(idle)

    def _start(self, fn: Any, tag: tuple[Any, ...]) -> None:
        worker = FunctionWorker(fn, tag)
        worker.done.connect(self._on_listed)
        worker.failed.connect(self._on_list_failed)
        job = ThreadJob(worker, "sslstudio-export-list", self)
        job.ended.connect(self._on_job_ended)
        self._jobs.append(job)

    @Slot(object, object)
    def _on_listed(self, tag: tuple[Any, ...], result: Any) -> None:
        if tag[0] == "runs":
            if tag[1] == self._listings:
                self._show_runs(result)
        elif tag[0] == "checkpoints" and tag[1] == self.selected_run():
            for name, step in result:
                self.checkpoint_combo.addItem(checkpoint_label(name, step), name)

    @Slot(object, str)
    def _on_list_failed(self, tag: tuple[Any, ...], message: str) -> None:
        if tag[0] == "runs":
            self.listing = False
        self.status.setText(f"Could not read the runs: {message}")

    @Slot()
    def _on_job_ended(self) -> None:
        self._jobs = [j for j in self._jobs if not j.done]

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 (Qt override)
        super().showEvent(event)
        if time.monotonic() - self._listed_at > 2.0 and not self.exporting:
            self.refresh()

    def shutdown(self) -> None:
        self.cancel_export()
        for job in list(self._jobs):
            job.wait(30_000)


def _checkpoints(run: str) -> list[tuple[str, int]]:
    """(name, step) of the run's checkpoints, newest first; damaged ones left out."""
    from sslstudio.core.train import checkpoints as ckpt
    from sslstudio.errors import CheckpointError

    out = []
    for p in ckpt.list_checkpoints(Path(run)):
        try:
            out.append((p.name, int(ckpt.read_meta(p)["step"])))
        except (CheckpointError, ValueError, TypeError):
            continue
    return out


def _same(a: str | None, b: str | None) -> bool:
    return bool(a and b) and Path(a).resolve() == Path(b).resolve()
