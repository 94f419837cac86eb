"""Step 1, Data: choose a folder, scan it in the background, see what will be trained on."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from PySide6.QtCore import Signal, Slot
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QFormLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from sslstudio.config import RunConfig
from sslstudio.core.transforms.presets import preset
from sslstudio.gui.config_model import RunConfigModel
from sslstudio.gui.pages.data.banner import Banner
from sslstudio.gui.pages.data.check_card import CheckCard
from sslstudio.gui.pages.data.checks import ignored_text, index_problem, unusable_folder
from sslstudio.gui.pages.data.recognised import RecognisedLine
from sslstudio.gui.pages.data.tiling_card import TilingCard
from sslstudio.gui.qt_models import ImageListModel, SkippedFilesModel, ThumbnailCache, human_bytes
from sslstudio.gui.run.worker import ScanWorker, ThreadJob
from sslstudio.gui.widgets.panels import Card, Page, hbox, hint
from sslstudio.gui.widgets.thumbnail_grid import ThumbnailGrid
from sslstudio.imaging.slides import SlideOptions


class DataPage(Page):
    """Signals: ``scanStarted(folder)``, ``indexChanged(ImageIndex)`` when a scan completes,
    ``folderRefused(message)`` when a path cannot be used (missing, a file, a failed scan).

    Edits the model's folder (``data_root``: the folder opened here) and slide tiling."""

    EDITS = ("data_root", "tile_px", "tile_mpp", "tile_tissue", "check_folder")

    scanStarted = Signal(str)
    indexChanged = Signal(object)
    folderRefused = Signal(str)

    def __init__(self, model: RunConfigModel, parent: QWidget | None = None) -> None:
        super().__init__(
            "Your images",
            "Choose a folder of images. Subfolders are searched too, and become classes when "
            "present; files that cannot be read are set aside with the reason.",
            parent,
        )
        self.model = model
        self.folder: str | None = None
        self.index: Any = None
        self._job = 0
        self._worker: ScanWorker | None = None
        self._jobs: list[ThreadJob] = []

        self.folder_label = QLabel("No folder chosen")
        self.folder_label.setObjectName("sectionTitle")
        self.choose_button = QPushButton("Choose folder…")
        self.choose_button.setObjectName("primary")
        self.choose_button.clicked.connect(self.choose_folder)
        self.rescan_button = QPushButton("Rescan")
        self.rescan_button.setEnabled(False)
        self.rescan_button.setToolTip(
            "List the folder again, ignoring the scan kept from last time"
        )
        self.rescan_button.clicked.connect(
            lambda: self.folder and self.open_folder(self.folder, rescan=True)
        )
        self.body.addLayout(hbox(self.folder_label, None, self.rescan_button, self.choose_button))
        self.banner = Banner()
        self.body.addWidget(self.banner)
        self.recognised = RecognisedLine()
        self.body.addWidget(self.recognised)
        self._choose_preset = False  # whether this scan's recognition sets the preset
        self.gpu = False  # set by the window once the engine says what it trains on

        self.progress = QProgressBar()
        self.progress.setFormat("Scanning… %v files")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel_scan)
        self.scan_status = hint("")  # files listed so far, while the total is not known yet
        self.scan_row = QWidget()
        self.scan_row.setLayout(hbox(self.progress, self.scan_status, self.cancel_button))
        self.scan_row.setVisible(False)
        self.body.addWidget(self.scan_row)

        splitter = QSplitter()
        splitter.setChildrenCollapsible(False)
        splitter.addWidget(self._build_left())
        splitter.addWidget(self._build_grid())
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([340, 900])
        self.body.addWidget(splitter, 1)
        model.changed.connect(self._on_model_changed)

    def _build_left(self) -> QWidget:
        left = QWidget()
        left.setMinimumWidth(300)
        left.setMaximumWidth(420)
        col = self._left_column = QVBoxLayout(left)
        col.setContentsMargins(0, 0, 0, 0)
        col.setSpacing(12)
        summary = Card("Summary")
        form = QFormLayout()
        form.setHorizontalSpacing(16)
        form.setVerticalSpacing(6)
        self.summary: dict[str, QLabel] = {}
        for key, caption in (
            ("images", "Usable images"),
            ("classes", "Classes"),
            ("formats", "Formats"),
            ("sizes", "Image sizes"),
            ("median", "Median size"),
            ("bytes", "On disk"),
            ("skipped", "Set aside"),
            ("ignored", "Ignored"),
        ):
            value = QLabel("–")
            value.setWordWrap(True)
            value.setObjectName(f"summary_{key}")
            form.addRow(QLabel(caption), value)
            self.summary[key] = value
        summary.layout_.addLayout(form)
        self.class_list = hint("")
        self.class_list.setVisible(False)
        summary.add(self.class_list)
        col.addWidget(summary)
        self.tiling_card = TilingCard()
        self.tiling_card.show_options(SlideOptions.of(self.model.config))
        self.tiling_card.setVisible(False)  # shown when the folder holds whole-slide images
        self.tiling_card.applied.connect(self._on_tiling_chosen)
        col.addWidget(self.tiling_card)
        self.check_card = CheckCard()
        self.check_card.show_folder(self.model.config.check_folder)
        self.check_card.chosen.connect(lambda folder: self.model.update(check_folder=folder))
        col.addWidget(self.check_card)

        skipped = self._skipped_card = Card()
        title = QLabel("Files set aside")
        title.setObjectName("sectionTitle")
        self.copy_button = QPushButton("Copy")
        self.copy_button.setToolTip(
            "Copy the list (file and reason, tab-separated) to the clipboard"
        )
        self.copy_button.setEnabled(False)
        self.copy_button.clicked.connect(self.copy_skipped)
        skipped.layout_.addLayout(hbox(title, None, self.copy_button))
        self.skipped_model = SkippedFilesModel(self)
        self.skipped_table = QTableView()
        self.skipped_table.setModel(self.skipped_model)
        self.skipped_table.verticalHeader().setVisible(False)
        self.skipped_table.horizontalHeader().setSectionResizeMode(
            0, QHeaderView.ResizeMode.Stretch
        )
        self.skipped_table.horizontalHeader().setSectionResizeMode(
            1, QHeaderView.ResizeMode.ResizeToContents
        )
        self.skipped_table.setSelectionBehavior(QTableView.SelectionBehavior.SelectRows)
        self.skipped_table.setWordWrap(False)
        self.skipped_table.setMinimumHeight(90)
        skipped.add(self.skipped_table, 1)
        self.skipped_empty = hint("None: every file was readable.")
        skipped.add(self.skipped_empty)
        col.addWidget(skipped, 1)
        col.addStretch(0)  # takes the slack instead of an empty table when nothing was set aside
        return left

    def _build_grid(self) -> QWidget:
        card = Card()
        title = QLabel("Images")
        title.setObjectName("sectionTitle")
        self.grid_caption = hint("")
        self.grid_caption.setWordWrap(False)
        card.layout_.addLayout(hbox(title, None, self.grid_caption))
        self.thumbnails = ThumbnailCache(size=96, parent=self)
        self.image_model = ImageListModel(self.thumbnails, self)
        self.grid = ThumbnailGrid(self.image_model)
        card.add(self.grid, 1)
        return card

    # -- scanning -------------------------------------------------------------------------

    def choose_folder(self) -> None:
        start = self.folder or str(Path.home())
        folder = QFileDialog.getExistingDirectory(self, "Choose a folder of images", start)
        if folder:
            self.open_folder(folder)

    def _on_tiling_chosen(self, options: SlideOptions) -> None:
        self.model.update(
            tile_px=options.tile_px, tile_mpp=options.mpp or 0.0, tile_tissue=options.tissue_min
        )

    def _on_model_changed(self, cfg: RunConfig, names: frozenset[str]) -> None:
        """A new tiling (chosen here or loaded) is shown, and slides are tiled again by a rescan;
        the recognised line follows the preset in use."""
        if "preset" in names:
            self.recognised.show_preset(cfg.preset)
        if "check_folder" in names:
            self.check_card.show_folder(cfg.check_folder)
        if not names & {"tile_px", "tile_mpp", "tile_tissue"}:
            return
        options = SlideOptions.of(cfg)
        changed = options != self.tiling_card.options
        self.tiling_card.show_options(options)
        if changed and self.folder and self.tiling_card.isVisibleTo(self):
            self.open_folder(self.folder)

    def open_folder(self, folder: str, *, rescan: bool = False, choose_preset: bool = True) -> None:
        """Scan ``folder`` in the background (a scan in progress is cancelled); an unchanged
        folder re-opens from the scan kept on disk unless ``rescan``. A folder other than the
        one open sets the preset its images look like, unless ``choose_preset`` is False (a
        resumed run, or the last session's folder with the last session's choices)."""
        self._choose_preset = choose_preset and str(folder) != self.folder
        self.cancel_scan()
        self._job += 1
        self.index = None
        self._clear_figures()
        problem = unusable_folder(Path(folder))
        if problem:
            self._refuse(str(folder), problem)
            return
        self.folder = str(folder)
        self.folder_label.setText(self.folder)
        self.folder_label.setToolTip(self.folder)
        self.rescan_button.setEnabled(True)
        self.progress.setRange(0, 0)  # busy until the first count arrives
        self.scan_status.setText("Listing files…")
        self.scan_row.setVisible(True)
        self.skipped_empty.setText(
            "Files the scan cannot use will be listed here, with the reason."
        )
        self.skipped_empty.setVisible(True)
        self._fit_skipped_card(False)
        worker = ScanWorker(
            self.folder, job=self._job, rescan=rescan, tiling=self.tiling_card.options
        )
        worker.progress.connect(self._on_progress)
        worker.done.connect(self._on_done)
        worker.failed.connect(self._on_failed)
        worker.cancelled.connect(self._on_cancelled)
        self._worker = worker
        job = ThreadJob(worker, "sslstudio-scan", self)
        job.ended.connect(self._on_job_ended)
        self._jobs.append(job)
        self.model.update(data_root=self.folder)
        self.scanStarted.emit(self.folder)

    @property
    def is_scanning(self) -> bool:
        return self._worker is not None

    def cancel_scan(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            self._worker = None
            self.scan_row.setVisible(False)

    @Slot(int, int, int)
    def _on_progress(self, job: int, done: int, total: int) -> None:
        if job != self._job:
            return
        if total > 0:
            self.progress.setRange(0, total)
            self.progress.setFormat("Checking images… %v of %m")
            self.scan_status.setText("")
        else:  # still walking: a busy bar (no text of its own) and the count beside it
            self.scan_status.setText(f"{done:,} files listed")
        self.progress.setValue(done)

    @Slot(int, object)
    def _on_done(self, job: int, result: Any) -> None:
        if job != self._job:
            return
        self._worker = None
        self.scan_row.setVisible(False)
        index, stats, found, native = result
        self.show_index(index, stats)
        self.check_card.show_classes(list(index.classes))
        size_line = ""
        if found is not None and self._choose_preset:
            size_line = self._choose_for(found.preset, native)
        self.recognised.show_found(found, self.model.config.preset, size_line)
        self.indexChanged.emit(index)

    def _choose_for(self, domain: str, native: int | None) -> str:
        """The preset for these images and, under a time limit, the image size, views and
        feature blend the planner chooses for them (as ``sslstudio train`` does); returns the
        line that says why the size ('' when no time limit chose it)."""
        cfg = self.model.config
        edits: dict[str, Any] = {"preset": domain, "augment": preset(domain, cfg.image_size)}
        line = ""
        if cfg.time_budget_s > 0:  # a time-first run: what its plan will use
            from sslstudio.core.train import budget

            seconds, device = cfg.time_budget_s, "cuda" if self.gpu else "cpu"
            planned = dataclasses.replace(cfg, preset=domain)
            choice, _ = budget.rules(planned, seconds, device, native)
            edits.update({k: choice[k] for k in ("image_size", "augment", "init_blend")})
            line = budget.size_reason(choice["image_size"], seconds, self.gpu, native)
            if choice["init_blend"]:
                line += (
                    f"; features blended with {choice['init_blend']:.0%} of the untrained "
                    "network, which in our tests held up better on slides stained elsewhere"
                )
        if any(getattr(cfg, k) != v for k, v in edits.items()):
            self.model.update(**edits)
        return line

    @Slot(int, str)
    def _on_failed(self, job: int, message: str) -> None:
        if job != self._job:
            return
        self._worker = None
        self.scan_row.setVisible(False)
        self._refuse(self.folder or "", message)

    @Slot(int)
    def _on_cancelled(self, job: int) -> None:
        if job == self._job:
            self._worker = None
            self.scan_row.setVisible(False)

    @Slot()
    def _on_job_ended(self) -> None:
        self._jobs = [j for j in self._jobs if not j.done]

    def _refuse(self, folder: str, message: str) -> None:
        """Nothing from this path is shown or kept: the banner says why, the figures are empty."""
        self.folder = None
        self.rescan_button.setEnabled(False)
        self.folder_label.setText("No folder open")
        self.folder_label.setToolTip(folder)
        self.banner.say(message)
        self.folderRefused.emit(message)

    def _clear_figures(self) -> None:
        """No figure of the previous folder stays on screen while the next one is looked at."""
        self.banner.clear()
        self.recognised.show_found(None, "")
        self.image_model.set_index(None)
        for value in self.summary.values():
            value.setText("–")
        self.class_list.setVisible(False)
        self.grid_caption.setText("")
        self.tiling_card.setVisible(False)
        self.skipped_model.set_skipped([])
        self.skipped_table.setVisible(False)
        self.copy_button.setEnabled(False)
        self.skipped_empty.setText("No folder scanned.")
        self.skipped_empty.setVisible(True)
        self._fit_skipped_card(False)  # an empty card keeps its title at the top

    # -- results --------------------------------------------------------------------------

    def show_index(self, index: Any, stats: Any = None) -> None:
        """Show a scan; ``stats`` (``index.stats()``) may read headers: workers compute it."""
        self.index = index
        stats = stats if stats is not None else index.stats()
        images, skipped = index.images, index.skipped
        s = self.summary
        s["images"].setText(f"{len(images):,}")
        classes = stats.classes
        s["classes"].setText(
            f"{len(classes)} (one per subfolder)" if classes else "none (no subfolders)"
        )
        self.class_list.setVisible(bool(classes))
        # non-breaking spaces keep each "name (count)" on one line when the list wraps
        self.class_list.setText(
            " · ".join(f"{name}\u00a0({n})" for name, n in sorted(classes.items())[:24])
        )
        s["formats"].setText(", ".join(f"{f} {n:,}" for f, n in stats.formats.items()) or "–")
        if images and stats.median is not None:
            (lw, lh), (hw, hh), (mw, mh) = stats.smallest, stats.largest, stats.median
            sample = f" (sample of {len(stats.sizes):,})" if stats.sizes_unknown else ""
            s["sizes"].setText(
                (
                    f"all {lw} × {lh} px"
                    if (lw, lh) == (hw, hh)
                    else f"{lw} × {lh} to {hw} × {hh} px"
                )
                + sample
            )
            s["median"].setText(f"{mw} × {mh} px{sample}")
            s["bytes"].setText(human_bytes(stats.total_bytes))
        else:
            for key in ("sizes", "median", "bytes"):
                s[key].setText("–")
        reasons = index.skipped_counts()
        s["skipped"].setObjectName("")
        s["skipped"].setText(
            "none"
            if not skipped
            else f"{len(skipped):,}: " + ", ".join(f"{n} {r}" for r, n in reasons.items())
        )
        s["ignored"].setText(ignored_text(index))
        self.skipped_model.set_skipped(skipped)
        self.skipped_table.setVisible(bool(skipped))
        self.skipped_empty.setVisible(not skipped)
        self.skipped_empty.setText("None: every file was readable.")
        self._fit_skipped_card(bool(skipped))
        self.copy_button.setEnabled(bool(skipped))
        self.image_model.set_index(index)
        tiles = stats.formats.get("TILE", 0)
        self.tiling_card.setVisible(bool(tiles))
        if tiles:
            self.tiling_card.show_count(tiles, stats.slides)
        self.grid_caption.setText(f"{len(images):,} images · hover for details")
        self._say_if_too_few(index)

    def _say_if_too_few(self, index: Any) -> None:
        if problem := index_problem(index):
            self.banner.say(*problem)

    def _fit_skipped_card(self, has_rows: bool) -> None:
        """The set-aside card grows with a table to show; otherwise the slack goes below it."""
        self._left_column.setStretchFactor(self._skipped_card, 1 if has_rows else 0)
        self._left_column.setStretch(self._left_column.count() - 1, 0 if has_rows else 1)

    def copy_skipped(self) -> None:
        QApplication.clipboard().setText(self.skipped_model.as_text())

    def shutdown(self) -> None:
        self.cancel_scan()
        for job in self._jobs:
            job.wait(10_000)  # a cancelled scan ends within ~50 ms
        self.thumbnails.shutdown()
