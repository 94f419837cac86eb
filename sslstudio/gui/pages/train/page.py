"""Step 4, Train: start, pause, stop and resume a run, and watch it learn.

A view over :class:`RunController`: buttons call it, its events feed the curves and the log.
"""

from __future__ import annotations

import time
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import Signal, Slot
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QGridLayout,
    QLabel,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QWidget,
)

from sslstudio.core.events import (
    CheckpointSaved,
    EpochEnded,
    MonitorLogged,
    PlanRevised,
    Preparing,
    RunFailed,
    RunFinished,
    RunStarted,
    RunStopped,
    StepLogged,
)
from sslstudio.gui import theme
from sslstudio.gui.run.controller import (
    ACTIVE,
    IDLE,
    PAUSED,
    PREPARING,
    RUNNING,
    STOPPING,
    RunController,
)
from sslstudio.gui.pages.train.run_text import format_device, format_eta, format_preparing
from sslstudio.gui.widgets.loss_plot import Ema, ThrottledPlot
from sslstudio.gui.widgets.panels import Card, Page, Stat, hbox, with_shortcut

STATE_TEXT = {
    IDLE: "Idle",
    PREPARING: "Preparing the images…",
    RUNNING: "Training",
    PAUSED: "Paused",
    STOPPING: "Stopping… saving a checkpoint",
}
ENDED_TEXT = {
    "finished": "Finished: the model is on the Runs page",
    "failed": "Failed: see the log below",
}
LOG_TEXT = {"scan": "reading the folder…", "decode": "decoding the images at the working size…"}


class TrainPage(Page):
    """Signals: ``startRequested()`` and ``resumeRequested(run_dir)``: the window builds the config."""

    startRequested = Signal()
    resumeRequested = Signal(str)

    def __init__(self, controller: RunController, parent: QWidget | None = None) -> None:
        super().__init__(
            "Train",
            "Watch the network learn. Pause or stop at any time: a stopped run keeps a checkpoint "
            "and resumes exactly where it left off.",
            parent,
        )
        self.controller = controller
        self.can_start = False
        self.error_box: QMessageBox | None = None
        self.total_steps = 0
        self._ema = Ema(0.95)
        self._bands: list[tuple[ThrottledPlot, pg.LinearRegionItem]] = []
        self._probe_n = 0  # images in the collapse monitor's probe set
        self._preparing_text = (
            ""  # the latest Preparing event, shown while the state is "preparing"
        )
        self._stage = ""
        self._shown_state = IDLE
        self._outcome = ""  # how the last run ended

        self.start_button = QPushButton("Start")
        self.start_button.setObjectName("primary")
        self.pause_button = QPushButton("Pause")
        self.resume_button = QPushButton("Resume")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setObjectName("danger")
        for button, tip, keys in (
            (self.start_button, "Start training with the settings of the Method page", "Ctrl+R"),
            (self.pause_button, "Pause after the current step", "Ctrl+Shift+P"),
            (self.stop_button, "Save a checkpoint and stop; Resume continues from it", "Ctrl+."),
        ):
            button.setToolTip(with_shortcut(tip, keys))
        self._start_tip = self.start_button.toolTip()
        self.state_label = QLabel("")
        self.state_label.setObjectName("muted")
        self.start_button.clicked.connect(self.startRequested)
        self.pause_button.clicked.connect(controller.pause)
        self.resume_button.clicked.connect(self._on_resume_clicked)
        self.stop_button.clicked.connect(controller.stop)
        self.body.addLayout(
            hbox(
                self.start_button,
                self.pause_button,
                self.resume_button,
                self.stop_button,
                None,
                self.state_label,
            )
        )

        stats = Card(margins=12)
        self.stats = {
            key: Stat(caption)
            for key, caption in (
                ("step", "Step"),
                ("epoch", "Epoch"),
                ("loss", "Loss (smoothed)"),
                ("speed", "Images / s"),
                ("eta", "Time left"),
                ("device", "Device"),
            )
        }
        stats.layout_.addLayout(hbox(*self.stats.values(), spacing=28))
        self.progress = QProgressBar()
        self.progress.setObjectName("thin")
        self.progress.setTextVisible(False)
        stats.add(self.progress)
        self.body.addWidget(stats)

        self.body.addLayout(self._build_plots(), 1)
        self.log = QPlainTextEdit()
        self.log.setObjectName("log")
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(5000)
        self.log.setFixedHeight(104)
        self.log.setPlaceholderText("Notices, warnings and checkpoints appear here.")
        self.body.addWidget(self.log)

        theme.changes().changed.connect(self.restyle)
        controller.event.connect(self.on_event)
        controller.stateChanged.connect(self._update_controls)
        controller.failed.connect(self.show_error)
        controller.runEnded.connect(self._on_run_ended)
        self._update_controls()

    def _build_plots(self) -> QGridLayout:
        t = theme.current()
        pen = theme.pen

        self.loss_plot = ThrottledPlot("Loss", legend=True)
        self.loss_plot.add_curve("raw", pen("loss_raw", 1), name="per step")
        self.loss_plot.add_curve("ema", pen("loss_ema"), name="smoothed")
        self.health_plot = ThrottledPlot("Spread and quality", legend=True)
        dots = dict(symbol="o", symbolSize=5, symbolPen=None)
        self.health_plot.add_curve(
            "std", pen("std"), name="std × √d", symbolBrush=t.curve("std"), **dots
        )
        self.health_plot.add_curve(
            "knn", pen("knn"), name="kNN top-1", symbolBrush=t.curve("knn"), **dots
        )
        self.health_plot.add_curve(
            "view", pen("view"), name="own-view retrieval", symbolBrush=t.curve("view"), **dots
        )
        self.health_plot.setYRange(0, 1.05, padding=0)
        self.health_plot.getPlotItem().enableAutoRange(y=False)
        self.rank_plot = ThrottledPlot("Effective rank (RankMe)")
        self.rank_plot.add_curve("rank", pen("rank"), symbolBrush=t.curve("rank"), **dots)
        self.lr_plot = ThrottledPlot("Learning rate")
        self.lr_plot.add_curve("plan", pen("lr_plan", 1.5, dash=True))
        self.lr_plot.add_curve("lr", pen("lr"))
        self.speed_plot = ThrottledPlot("Images / s")
        self.speed_plot.add_curve("ips", pen("ips"))
        self.wait_plot = ThrottledPlot("Waiting for data (%)")
        self.wait_plot.add_curve("wait", pen("wait"))
        self.wait_plot.setYRange(0, 100, padding=0.02)
        self.wait_plot.getPlotItem().enableAutoRange(y=False)
        self.plots = [
            self.loss_plot,
            self.health_plot,
            self.rank_plot,
            self.lr_plot,
            self.speed_plot,
            self.wait_plot,
        ]
        grid = QGridLayout()
        grid.setSpacing(10)
        grid.addWidget(self.loss_plot, 0, 0, 1, 2)
        grid.addWidget(self.health_plot, 0, 2, 1, 2)
        for col, plot in enumerate((self.lr_plot, self.speed_plot, self.wait_plot, self.rank_plot)):
            grid.addWidget(plot, 1, col)
            grid.setColumnStretch(col, 1)
        grid.setRowStretch(0, 3)
        grid.setRowStretch(1, 2)
        return grid

    # -- controls -----------------------------------------------------------------------------

    def set_can_start(self, ok: bool, why: str = "") -> None:
        """Whether Start makes sense now (a scanned folder, the engine loaded); ``why`` as tooltip."""
        self.can_start = ok
        self.start_button.setToolTip(
            self._start_tip if ok or not why else f"{why}. {self._start_tip}"
        )
        self._update_controls()

    @Slot()
    def _on_resume_clicked(self) -> None:
        if self.controller.state == PAUSED:
            self.controller.resume()
        elif self.controller.state == IDLE and self.controller.resumable:
            self.resumeRequested.emit(self.controller.resumable)

    def _update_controls(self, *_: object) -> None:
        state = self.controller.state
        idle = state == IDLE
        self.start_button.setEnabled(idle and self.can_start)
        self.pause_button.setEnabled(state == RUNNING and self.controller.can_pause)
        self.resume_button.setEnabled(state == PAUSED or (idle and bool(self.controller.resumable)))
        self.resume_button.setToolTip(
            with_shortcut(
                "Continue the stopped run from its last checkpoint"
                if idle
                else "Continue the paused run",
                "Ctrl+Shift+P",
            )
        )
        self.stop_button.setEnabled(state in ACTIVE)
        text = STATE_TEXT[state]
        if state == PREPARING and self._preparing_text:
            text = self._preparing_text
        elif idle and self.controller.resumable:
            text = "Stopped: Resume continues from the checkpoint"
        elif idle and self._outcome in ENDED_TEXT:
            text = ENDED_TEXT[self._outcome]
        self.state_label.setText(text)
        if state == PREPARING and self._shown_state == IDLE:  # a new run: the last one's numbers go
            for key in ("step", "epoch", "loss", "speed", "eta"):
                self.stats[key].set("–")
        self._shown_state = state
        if state == PREPARING and not self._preparing_text:
            self.progress.setRange(0, 0)  # busy until the first count arrives
        if idle:
            self._preparing_text = self._stage = ""
            if self.progress.maximum() == 0:  # a run that failed while preparing
                self.progress.setRange(0, 1)

    @Slot(str)
    def _on_run_ended(self, outcome: str) -> None:
        self._outcome = outcome
        self._update_controls()

    # -- events --------------------------------------------------------------------------------

    @Slot(object)
    def on_event(self, ev: object) -> None:
        if isinstance(ev, StepLogged):
            self._on_step(ev)
        elif isinstance(ev, Preparing):
            self._on_preparing(ev)
        elif isinstance(ev, MonitorLogged):
            self._on_monitor(ev)
        elif isinstance(ev, RunStarted):
            self._on_started(ev)
        elif isinstance(ev, EpochEnded):
            self.append_log(f"epoch {ev.epoch + 1} done: mean loss {ev.mean_loss:.4f}")
        elif isinstance(ev, CheckpointSaved):
            self.append_log(f"checkpoint at step {ev.step}: {ev.path}")
        elif isinstance(ev, RunStopped):
            self._on_stopped(ev)
        elif isinstance(ev, RunFinished):
            self.append_log(
                f"finished {ev.step} steps, final loss {ev.final_loss:.4f}; weights in {ev.path}"
                + (f"\nrecommended: {ev.recommended}: {ev.advice}" if ev.advice else "")
            )
            self.progress.setValue(self.progress.maximum())
        elif isinstance(ev, PlanRevised):
            self.total_steps = ev.total_steps
            self.progress.setMaximum(ev.total_steps)
            self.append_log(
                f"plan revised at step {ev.step} ({ev.reason}): batch {ev.batch_size}, "
                f"{ev.total_steps} steps, peak learning rate {ev.peak_lr:.3g}"
            )
        elif isinstance(ev, RunFailed):
            self.append_log(
                f"FAILED at step {ev.step}: {ev.message}"
                + (f" (last good checkpoint: {ev.last_checkpoint})" if ev.last_checkpoint else "")
            )

    def _on_preparing(self, ev: Preparing) -> None:
        if ev.stage != self._stage:
            self._stage = ev.stage
            self.append_log(LOG_TEXT.get(ev.stage, ev.stage))
        self._preparing_text = format_preparing(ev)
        if ev.total > 0:
            self.progress.setRange(0, ev.total)
            self.progress.setValue(min(ev.done, ev.total))
        else:
            self.progress.setRange(0, 0)  # busy: the total is not known yet
        if self.controller.state == PREPARING:
            self.state_label.setText(self._preparing_text)

    def _on_stopped(self, ev: RunStopped) -> None:
        self._preparing_text = self._stage = ""
        if ev.path:
            self.append_log(
                f"stopped at step {ev.step}; checkpoint {ev.path}. Resume continues from here."
            )
        elif self.controller.resumable:
            self.append_log(
                "stopped before the first step; Resume starts this run again from step 0."
            )
        else:
            self.append_log("stopped before the first step; nothing to resume.")
        self.progress.setRange(0, max(1, self.total_steps))
        self.progress.setValue(ev.step)

    def _on_started(self, ev: RunStarted) -> None:
        self._preparing_text = self._stage = ""
        self.total_steps = ev.total_steps
        cfg = self.controller.last_config
        self._probe_n = min(cfg.probe_size, ev.num_images) if cfg is not None else ev.num_images
        for plot in self.plots:
            plot.clear_curves()
        for plot, band in self._bands:  # the next run may have another embedding size
            plot.removeItem(band)
        self._bands.clear()
        self._ema.reset()
        if ev.start_step > 0:
            self._load_history(Path(ev.run_dir), ev.start_step)
        self.lr_plot.set_curve("plan", range(len(ev.lr_schedule)), ev.lr_schedule)
        self.progress.setRange(0, max(1, ev.total_steps))
        self.progress.setValue(ev.start_step)
        self.stats["device"].set(format_device(ev.device))
        self.stats["step"].set(f"{ev.start_step:,} / {ev.total_steps:,}")
        verb = f"resumed at step {ev.start_step}" if ev.start_step else "started"
        self.append_log(
            f"run {verb}: {ev.num_images:,} images, batch {ev.batch_size}, {ev.total_steps:,} steps "
            f"on {ev.device}; folder {ev.run_dir}"
        )
        for notice in ev.notices:
            self.append_log(f"note: {notice}")

    def _load_history(self, run_dir: Path, before: int) -> None:
        """Curves of the steps before a resume, from the run's metrics log."""
        from sslstudio.core.train.runs import read_metrics

        for row in read_metrics(run_dir):
            if row.get("step", before) >= before:
                continue
            if row.get("kind") == "step":
                self._plot_step(
                    row["step"], row["loss"], row["lr"], row["images_per_s"], row["data_wait"]
                )
            elif row.get("kind") == "monitor":
                self._plot_monitor(
                    row["step"],
                    row["std_sqrt_d"],
                    row["rankme"],
                    row["embed_dim"],
                    row.get("knn_top1"),
                    row.get("view_top1"),
                )

    def _plot_step(self, step: int, loss: float, lr: float, ips: float, wait: float) -> float:
        ema = self._ema.update(loss)
        self.loss_plot.append("raw", step, loss)
        self.loss_plot.append("ema", step, ema)
        self.lr_plot.append("lr", step, lr)
        self.speed_plot.append("ips", step, ips)
        self.wait_plot.append("wait", step, 100 * wait)
        return ema

    def _on_step(self, ev: StepLogged) -> None:
        ema = self._plot_step(ev.step, ev.loss, ev.lr, ev.images_per_s, ev.data_wait)
        done = ev.step + 1
        self.stats["step"].set(f"{done:,} / {self.total_steps:,}")
        self.stats["epoch"].set(f"{ev.epoch + 1:,}")
        self.stats["loss"].set(f"{ema:.4f}")
        self.stats["speed"].set(f"{ev.images_per_s:,.0f}")
        self.stats["eta"].set(format_eta(ev.eta_s))
        self.progress.setValue(done)

    def _plot_monitor(
        self,
        step: int,
        std: float,
        rank: float,
        dim: int,
        knn: float | None,
        view: float | None = None,
    ) -> None:
        if not self._bands:
            self._add_collapse_bands(dim)
        self.health_plot.append("std", step, std)
        self.rank_plot.append("rank", step, rank)
        if knn is not None:
            self.health_plot.append("knn", step, knn)
        if view is not None:
            self.health_plot.append("view", step, view)

    def restyle(self, _theme: object = None) -> None:
        """After a light/dark switch: every plot, and the collapse bands' shade."""
        brush = QColor(*theme.current().curve("band"))
        for plot in self.plots:
            theme.restyle_plot(plot)
        for _, band in self._bands:
            band.setBrush(brush)
            band.update()

    def _add_collapse_bands(self, dim: int) -> None:
        """Shade where the core's collapse warnings fire (thresholds from core.monitor)."""
        from sslstudio.core.train.monitor import (  # torch is loaded: a run is going
            COLLAPSE_STD,
            RANK_SHARE,
        )

        brush = QColor(*theme.current().curve("band"))
        rank_limit = max(2.0, RANK_SHARE * min(self._probe_n or dim, dim))  # as collapse_warning()
        for plot, top, tip in (
            (
                self.health_plot,
                COLLAPSE_STD,
                "complete collapse: every image maps to nearly the same point",
            ),
            (
                self.rank_plot,
                rank_limit,
                "dimensional collapse: the embeddings use very few dimensions",
            ),
        ):
            band = pg.LinearRegionItem(
                (0, top), orientation="horizontal", movable=False, brush=brush, pen=pg.mkPen(None)
            )
            band.setZValue(-10)
            band.setToolTip(tip)
            plot.addItem(band)
            self._bands.append((plot, band))
        self.rank_plot.getPlotItem().setLabel("left", f"of {dim} dims")

    def _on_monitor(self, ev: MonitorLogged) -> None:
        self._plot_monitor(
            ev.step, ev.std_sqrt_d, ev.rankme, ev.embed_dim, ev.knn_top1, ev.view_top1
        )
        knn = f", kNN top-1 {ev.knn_top1:.1%}" if ev.knn_top1 is not None else ""
        knn += f", own-view retrieval {ev.view_top1:.1%}" if ev.view_top1 is not None else ""
        self.append_log(
            f"health at step {ev.step}: std×√d {ev.std_sqrt_d:.3f}, RankMe {ev.rankme:.1f}/{ev.embed_dim}{knn}"
        )
        if ev.warning:
            self.append_log(f"WARNING at step {ev.step}: {ev.warning}")
        if ev.verdict:
            self.append_log(f"step {ev.step}: {ev.verdict}")

    def append_log(self, text: str) -> None:
        self.log.appendPlainText(f"{time.strftime('%H:%M:%S')}  {text}")

    @Slot(str, str)
    def show_error(self, message: str, details: str = "") -> None:
        """A non-blocking message box: the window stays usable, the controls are already re-enabled."""
        self.append_log(f"ERROR: {message}")
        box = QMessageBox(
            QMessageBox.Icon.Critical,
            "Training stopped with an error",
            message,
            QMessageBox.StandardButton.Ok,
            self,
        )
        box.setInformativeText("The last good checkpoint, if any, is intact. Details are below.")
        if details:
            box.setDetailedText(details)
        self.error_box = box
        box.open()

    def redraw_now(self) -> None:
        """Flush the throttled plots (screenshots, tests)."""
        for plot in self.plots:
            plot.redraw()
