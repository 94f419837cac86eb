"""The main window: a step list, the pages, menus, status bar; where pages are wired together."""

from __future__ import annotations

import base64
import dataclasses
import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, Slot
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QHBoxLayout, QLabel, QMainWindow, QMessageBox, QStackedWidget, QWidget

from sslstudio import __version__
from sslstudio.config import RunConfig
from sslstudio.core.events import RunStarted
from sslstudio.errors import ConfigError
from sslstudio.gui import theme
from sslstudio.gui.actions import build_menus
from sslstudio.gui.catalog import Catalog, CatalogLoader
from sslstudio.gui.config_model import RunConfigModel
from sslstudio.gui.pages.augment.page import AugmentPage
from sslstudio.gui.pages.data.checks import MIN_IMAGES
from sslstudio.gui.pages.data.page import DataPage
from sslstudio.gui.pages.explore.page import ExplorePage
from sslstudio.gui.pages.export.page import ExportPage
from sslstudio.gui.pages.method.page import MethodPage
from sslstudio.gui.pages.runs.page import RunsPage
from sslstudio.gui.pages.train.page import STATE_TEXT, TrainPage
from sslstudio.gui.run.controller import ACTIVE, IDLE, PAUSED, RUNNING, RunController
from sslstudio.gui.run.history import last_resumable
from sslstudio.gui.settings import Settings
from sslstudio.gui.widgets.panels import lay_out_unseen
from sslstudio.gui.widgets.step_list import Sidebar
from sslstudio.paths import runs_dir, sample_images_dir

log = logging.getLogger(__name__)

STEPS = ("Data", "Augment", "Method", "Train", "Runs", "Explore", "Export")
COMING: tuple[str, ...] = ()
SHOWN = (*DataPage.EDITS, *AugmentPage.EDITS, *MethodPage.EDITS)  # the fields a user can see
# a loaded config leaves these as they are: the folder open here, this machine's thread count,
# and the deadline of the plan made on the Method page (if any)
KEEP_ON_LOAD = ("data_root", "threads", "time_budget_s")


class MainWindow(QMainWindow):
    def __init__(self, settings: Settings | None = None) -> None:
        super().__init__()
        self.settings = settings or Settings()
        self.catalog: Catalog | None = None
        self._close_when_idle = False
        self.setWindowTitle("SSL Studio")
        self.setWindowIcon(theme.app_icon())
        self.setAcceptDrops(True)
        self.setMinimumSize(1024, 680)

        self.controller = RunController(self)
        self.config_model = RunConfigModel(parent=self)  # the run the pages set up; Start reads it
        self.data_page = DataPage(self.config_model)
        self.augment_page = AugmentPage(self.config_model)
        self.method_page = MethodPage(self.config_model)
        self.train_page = TrainPage(self.controller)
        self.runs_page = RunsPage(self.controller, self.settings)
        self.explore_page = ExplorePage(self.settings)
        self.export_page = ExportPage(self.controller, self.settings)
        self.pages = [
            self.data_page,
            self.augment_page,
            self.method_page,
            self.train_page,
            self.runs_page,
            self.explore_page,
            self.export_page,
        ]
        self.stack = QStackedWidget()
        for page in self.pages:
            self.stack.addWidget(page)

        central = QWidget()
        row = QHBoxLayout(central)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(0)
        row.addWidget(self._build_sidebar())
        row.addWidget(self.stack, 1)
        self.setCentralWidget(central)
        self._build_status_bar()
        self._build_menus()
        self._wire()
        self._restore()

        self.loader = CatalogLoader(self)
        self.loader.ready.connect(self._on_catalog)
        self.loader.failed.connect(self._on_catalog_failed)
        self.loader.start()

    # -- construction ---------------------------------------------------------------------------

    def _build_sidebar(self) -> QWidget:
        side = Sidebar(STEPS, COMING)
        self.steps = side.steps
        self.steps.currentRowChanged.connect(self._on_step_chosen)
        self.steps.setCurrentRow(0)
        return side

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.device_status = QLabel("Device: checking…")
        self.run_status = QLabel(STATE_TEXT[IDLE])
        self.run_status.setObjectName("runStatus")
        bar.addPermanentWidget(self.device_status)
        bar.addPermanentWidget(self.run_status)
        if self.settings.moved_aside is not None:  # RELIABILITY 35: say so, keep the file
            bar.showMessage(
                f"The settings file was damaged: set aside as {self.settings.moved_aside.name}; "
                "defaults are used",
                30_000,
            )

    def _build_menus(self) -> None:
        self.actions_ = build_menus(
            self,
            STEPS,
            {
                "open_folder": self._choose_folder,
                "open_run": self._open_run,
                "quit": self.close,
                "start": self.start_run,
                "pause": self._toggle_pause,
                "stop": self.controller.stop,
                "estimate": self._estimate,
                "copy_command": self.method_page.copy_command,
                "refresh_runs": self.runs_page.refresh,
                "about": self.show_about,
                "go": self.show_page,
            },
        )
        a = self.actions_
        self.open_action, self.recent_menu = a.open_folder, a.recent_menu
        self.start_action, self.pause_action, self.stop_action = a.start, a.pause, a.stop
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        self._fill_recent()

    def _wire(self) -> None:
        d, m, t, c = (
            self.data_page,
            self.method_page,
            self.train_page,
            self.controller,
        )
        d.scanStarted.connect(self._on_scan_started)
        d.indexChanged.connect(self._on_index)
        d.folderRefused.connect(self._on_folder_refused)
        self.config_model.changed.connect(self._on_config_changed)
        m.budgetPlanned.connect(self._on_budget_planned)
        c.event.connect(self._save_budget_plan)
        t.startRequested.connect(self.start_run)
        t.resumeRequested.connect(self.continue_run)
        t.exploreRequested.connect(self.explore_run)
        self.runs_page.resumeRequested.connect(self.continue_run)
        c.stateChanged.connect(self._on_run_state)
        c.runEnded.connect(self._on_run_ended)
        self._on_run_state(c.state)

    def _restore(self) -> None:
        geometry = self.settings.get("geometry", "")
        if geometry:
            self.restoreGeometry(
                QByteArray(base64.b64decode(geometry.encode("ascii"), validate=False))
            )
        else:
            self.resize(1280, 800)
        self.method_page.set_threads(self.settings.get("threads", 0))
        saved = self.settings.get("last_config", {})
        if saved:
            try:
                cfg = RunConfig.from_dict(saved)
            except (ConfigError, TypeError, ValueError) as exc:  # an older or hand-edited file
                log.warning("ignoring the saved choices: %s", exc)
            else:
                self.load_config(cfg)
        self._offer_resume()

    # -- config ---------------------------------------------------------------------------------

    def load_config(self, cfg: RunConfig, keep: tuple[str, ...] = KEEP_ON_LOAD) -> None:
        """Show a saved, resumed or planned run's choices on every page, except the fields in
        ``keep``. Only what the pages show is taken, the rest reset to the defaults: a run's
        folder, weights and measured step times belong to that run, not to the next one."""
        now = self.config_model.config
        taken = {name: getattr(now if name in keep else cfg, name) for name in SHOWN}
        taken["method_options"] = self.method_page.options_as_shown(
            taken["method"], taken["method_options"]
        )
        self.config_model.set(RunConfig(**taken))

    @Slot(object)
    def _on_budget_planned(self, plan) -> None:
        """Show the plan's choices on every page; each can still be changed before Start."""
        self.load_config(plan.config, keep=("data_root", "threads"))

    @Slot(object, object)
    def _on_config_changed(self, cfg: RunConfig, names: frozenset[str]) -> None:
        if "method" in names:
            self._on_method_changed(cfg.method)

    @Slot(object)
    def _save_budget_plan(self, ev: object) -> None:
        plan = self.method_page.budget.plan_result
        if isinstance(ev, RunStarted) and ev.start_step == 0 and plan is not None:
            cfg = self.controller.last_config
            if cfg is not None and cfg.time_budget_s == plan.config.time_budget_s:
                plan.save(ev.run_dir)  # saved with the run, beside config.json

    # -- folders ---------------------------------------------------------------------------------

    def open_folder(self, folder: str | Path, *, choose_preset: bool = True) -> None:
        self.data_page.open_folder(str(folder), choose_preset=choose_preset)

    def open_initial(self, folder: str | None) -> None:
        """``folder``, else the last one used (if it still exists) with the last session's
        choices for it, else the sample images."""
        last = self.settings.get("last_folder", "")
        if folder:
            self.open_folder(folder)
        elif last and Path(last).is_dir():
            self.open_folder(last, choose_preset=False)
        else:
            self.open_folder(sample_images_dir())

    def _choose_folder(self) -> None:
        self.steps.setCurrentRow(0)
        self.data_page.choose_folder()

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        recent = self.settings.recent_folders()
        for folder in recent:
            action = self.recent_menu.addAction(folder)
            action.triggered.connect(lambda _=False, f=folder: self.open_folder(f))
        self.recent_menu.setEnabled(bool(recent))

    @Slot(str)
    def _on_scan_started(self, folder: str) -> None:
        self.setWindowTitle("SSL Studio")  # named after a folder once it proves to hold images
        self.statusBar().showMessage(f"Scanning {folder}…")
        self._update_can_start()

    @Slot(str)
    def _on_folder_refused(self, message: str) -> None:
        self.setWindowTitle("SSL Studio")
        self.statusBar().showMessage(message)
        self._update_can_start()

    @Slot(object)
    def _on_index(self, index: Any) -> None:
        self.augment_page.set_index(index)
        self.method_page.set_num_images(len(index.images))
        if index.images:  # only a folder of images is worth offering again
            folder = self.data_page.folder or str(index.root)
            self.settings.set("last_folder", folder)
            self.settings.add_recent_folder(folder)
            self.setWindowTitle(f"{Path(folder).name or folder} — SSL Studio")
            self.statusBar().showMessage(index.summary(), 8000)
        else:
            self.statusBar().showMessage(f"No images found in {index.root}")
        self._update_can_start()

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 (Qt override)
        if _dropped_folder(event.mimeData()) is not None:
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        folder = _dropped_folder(event.mimeData())
        if folder is not None:
            event.acceptProposedAction()
            self.steps.setCurrentRow(0)
            self.open_folder(folder)

    # -- catalog ---------------------------------------------------------------------------------

    @Slot(object)
    def _on_catalog(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.data_page.gpu = catalog.cuda_count > 0  # the image size a time plan chooses
        self.method_page.set_catalog(catalog)
        self._on_method_changed(self.config_model.config.method)
        self.augment_page.set_catalog_ready()
        self.device_status.setText(f"Device: {catalog.describe_device('auto')}")
        for notice in catalog.notices:
            self.train_page.append_log(f"note: {notice}")
        self._update_can_start()
        lay_out_unseen(self.stack, [self.method_page, self.train_page])  # an idle moment: see there

    @Slot(str)
    def _on_catalog_failed(self, message: str) -> None:
        self.device_status.setText("Device: unavailable")
        QMessageBox.critical(
            self, "The training engine did not load", f"{message}\n\nTraining is unavailable."
        )

    @Slot(str)
    def _on_method_changed(self, name: str) -> None:
        if self.catalog is not None and name in self.catalog.methods:
            self.augment_page.set_constraints(self.catalog.methods[name].constraints)

    # -- runs ------------------------------------------------------------------------------------

    def _update_can_start(self) -> None:
        if self.catalog is None:
            ok, why = False, "The training engine is still loading"
        elif self.data_page.index is None or not self.data_page.index.images:
            ok, why = False, "Choose a folder with readable images first"
        elif len(self.data_page.index.images) < MIN_IMAGES:
            ok, why = False, f"Too few images to train on: choose a folder of {MIN_IMAGES} or more"
        else:
            ok, why = True, ""
        self.train_page.set_can_start(ok, why)
        self.start_action.setEnabled(ok and self.controller.state == IDLE)

    @Slot()
    def start_run(self) -> None:
        if self.controller.is_running() or not self.train_page.can_start:
            return
        cfg = self.config_model.config
        try:
            from sslstudio.core.methods import check_run_config  # loaded with the catalog

            check_run_config(cfg)
        except ConfigError as exc:
            self.train_page.show_error(str(exc))
            return
        self.settings.set("last_config", _choices(cfg))
        self.steps.setCurrentRow(STEPS.index("Train"))
        self.controller.start(cfg, processes=self.method_page.processes())

    @Slot(str)
    def continue_run(self, run_dir: str) -> None:
        """Load a run's config into the pages; continue it from its last checkpoint (or step 0)."""
        from sslstudio.core.train.runs import load_run_config

        if self.controller.is_running():
            return
        try:
            cfg = load_run_config(Path(run_dir))
        except ConfigError as exc:
            self.train_page.show_error(str(exc))
            return
        self.load_config(cfg)
        if (
            cfg.data_root
            and cfg.data_root != self.data_page.folder
            and Path(cfg.data_root).is_dir()
        ):
            # the pages then describe the run being continued, with its own preset
            self.open_folder(cfg.data_root, choose_preset=False)
        self.show_page("Train")
        self.controller.start(
            dataclasses.replace(cfg, threads=self.method_page.threads()),
            resume_from=run_dir,
            processes=self.method_page.processes(),
        )

    @Slot(str)
    def explore_run(self, run_dir: str) -> None:
        """The next step after a finished run: Explore, with that run opened."""
        self.show_page("Explore")
        self.explore_page.open_run(run_dir)

    def _offer_resume(self) -> None:
        """After a restart: Resume on the Train page continues the last run if it can."""
        if self.controller.resumable is None and not self.controller.is_running():
            self.controller.resumable = last_resumable(runs_dir())
            self.train_page.refresh_controls()

    def _open_run(self) -> None:
        self.show_page("Runs")
        self.runs_page.choose_run()

    def _estimate(self) -> None:
        self.show_page("Method")
        self.method_page.estimate()

    def _toggle_pause(self) -> None:
        if self.controller.state == RUNNING:
            self.controller.pause()
        elif self.controller.state == PAUSED:
            self.controller.resume()

    @Slot(str)
    def _on_run_state(self, state: str) -> None:
        self.run_status.setText(STATE_TEXT[state])
        self.pause_action.setText("&Resume" if state == PAUSED else "&Pause")
        self.pause_action.setEnabled(state in (RUNNING, PAUSED))
        self.stop_action.setEnabled(state in ACTIVE)
        self.start_action.setEnabled(state == IDLE and self.train_page.can_start)
        self.method_page.set_run_active(state != IDLE)

    @Slot(str)
    def _on_run_ended(self, outcome: str) -> None:
        self.statusBar().showMessage(f"Run {outcome}.", 8000)
        self.explore_page.refresh_runs()  # the run just trained is the one to explore next
        if self._close_when_idle:
            self.close()

    # -- window ----------------------------------------------------------------------------------

    def _on_step_chosen(self, row: int) -> None:
        if 0 <= row < len(self.pages):
            self.stack.setCurrentIndex(row)

    def show_page(self, name: str) -> None:
        self.steps.setCurrentRow(STEPS.index(name))

    def show_about(self) -> None:
        attribution = sample_images_dir() / "ATTRIBUTION.md"
        try:
            credit = attribution.read_text(encoding="utf-8").split("\n\n")[2:5]
        except OSError:
            credit = []
        text = "<br><br>".join(p.replace("\n", " ") for p in credit)
        self.about_box = QMessageBox(
            QMessageBox.Icon.NoIcon, "About SSL Studio", "", QMessageBox.StandardButton.Ok, self
        )
        self.about_box.setIconPixmap(theme.app_icon().pixmap(64, 64))
        self.about_box.setText(
            f"<h3>SSL Studio {__version__}</h3>"
            "<p>Pretrain self-supervised vision models on your own images.</p>"
            f"<p><b>Sample images</b>: colorectal cancer histology tiles (Kather et al., 2016), "
            f"CC BY 4.0.</p><p style='font-size:small'>{text}</p>"
        )
        self.about_box.open()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt override)
        if self.controller.is_running():
            # the run checkpoints first; we close when the thread has finished (runEnded)
            event.ignore()
            self._close_when_idle = True
            self.controller.stop()
            self.statusBar().showMessage("Saving a checkpoint before closing…")
            return
        self.settings.update(
            {
                "geometry": base64.b64encode(bytes(self.saveGeometry().data())).decode("ascii"),
                "last_config": _choices(self.config_model.config),
                "threads": self.method_page.threads(),
            }
        )
        self.controller.inhibitor.release()  # idle already; a last guard
        for page in self.pages:
            page.shutdown()
        event.accept()


def _choices(cfg: RunConfig) -> dict[str, Any]:
    """What to remember between sessions: the choices, not the folder or machine-specific bits."""
    d = cfg.to_dict()
    for key in ("data_root", "out", "threads", "weights"):
        d.pop(key, None)
    return d


def _dropped_folder(mime: Any) -> str | None:
    if mime is None or not mime.hasUrls():
        return None
    for url in mime.urls():
        if url.isLocalFile() and Path(url.toLocalFile()).is_dir():
            return url.toLocalFile()
    return None
