"""Step 4, Train: start, pause, stop and resume a run, and watch it learn.

A view over :class:`RunController`: buttons call it, its events feed the curves and the log.
"""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QLabel,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QWidget,
)

from sslstudio.core.events import (
    Event,
    MonitorLogged,
    PlanRevised,
    Preparing,
    RunFinished,
    RunStarted,
    RunStopped,
    StepLogged,
    describe,
)
from sslstudio.gui import theme
from sslstudio.gui.pages.train.run_text import (
    format_device,
    format_eta,
    format_preparing,
    verdict_sentence,
)
from sslstudio.gui.run.controller import (
    ACTIVE,
    IDLE,
    PAUSED,
    PREPARING,
    RUNNING,
    STOPPING,
    RunController,
)
from sslstudio.gui.widgets.panels import Card, Page, Stat, hbox, with_shortcut
from sslstudio.gui.widgets.run_plots import RunPlots
from sslstudio.gui.widgets.words import BEST_MEANS

STATE_TEXT = {
    IDLE: "Idle",
    PREPARING: "Preparing the images…",
    RUNNING: "Training",
    PAUSED: "Paused",
    STOPPING: "Stopping… saving a checkpoint",
}
ENDED_TEXT = {
    "finished": "Finished",  # the verdict line says how it went, the button what is next
    "failed": "Failed: see the log below",
}
LOG_TEXT = {
    "scan": "reading the folder…",
    "decode": "decoding the images at the working size…",
    "check": "reading the check folder (labelled images from other slides)…",
}
BEFORE_RUN = (
    "Start a run: this line then tells you, in plain words, whether the network is learning."
)
STARTED = "Training has started. The first check of whether it is learning comes in a few steps."


def _sign_word(ev: MonitorLogged) -> str:
    """The verdict label's style: good, bad or neutral news."""
    if ev.warning and ev.step > 0:
        return "bad"
    return {1: "good", -1: "bad"}.get(ev.verdict_sign or 0, "")


class TrainPage(Page):
    """Signals: ``startRequested()`` and ``resumeRequested(run_dir)``: the window builds the
    config; ``exploreRequested(run_dir)``: the run that just finished, to open on Explore."""

    startRequested = Signal()
    resumeRequested = Signal(str)
    exploreRequested = Signal(str)

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
        self._first_check: MonitorLogged | None = None  # the run's health check at step 0
        self._last_check: MonitorLogged | None = None
        self._preparing_text = (
            ""  # the latest Preparing event, shown while the state is "preparing"
        )
        self._stage = ""
        self._shown_state = IDLE
        self._outcome = ""  # how the last run ended
        self.verdict_label = QLabel(BEFORE_RUN)
        self.verdict_label.setObjectName("verdict")
        self.verdict_label.setWordWrap(True)
        self.verdict_label.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        self.verdict_label.setMinimumHeight(48)  # two lines at 15 px: no jump when it wraps
        self.body.addWidget(self.verdict_label)
        self._build_controls()
        self._build_stats()
        self.run_plots = RunPlots()
        self.body.addWidget(self.run_plots, 1)
        self.log = QPlainTextEdit()
        self.log.setObjectName("log")
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(5000)
        self.log.setFixedHeight(104)
        self.log.setPlaceholderText("Notices, warnings and checkpoints appear here.")
        self.body.addWidget(self.log)

        theme.changes().changed.connect(self.run_plots.restyle)
        controller.event.connect(self.on_event)
        controller.stateChanged.connect(self._update_controls)
        controller.failed.connect(self.show_error)
        controller.runEnded.connect(self._on_run_ended)
        self._update_controls()

    def _build_controls(self) -> None:
        controller = self.controller
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
        self.explore_button = QPushButton("Explore the result")
        self.explore_button.setObjectName("primary")
        self.explore_button.setToolTip("Open the run that just finished on the Explore page")
        self.explore_button.setVisible(False)
        self.explore_button.clicked.connect(self._on_explore_clicked)
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
                self.explore_button,
            )
        )

    def _build_stats(self) -> None:
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

    # -- controls -----------------------------------------------------------------------------

    def set_can_start(self, ok: bool, why: str = "") -> None:
        """Whether Start makes sense now (a scanned folder, the engine loaded); ``why`` as
        tooltip."""
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

    def refresh_controls(self) -> None:
        """The buttons and state line again, after the controller changed outside a run (a
        resumable run found after a restart)."""
        self._update_controls()

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
        self.explore_button.setVisible(
            idle and self._outcome == "finished" and bool(self.controller.run_dir)
        )
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

    @Slot()
    def _on_explore_clicked(self) -> None:
        if self.controller.run_dir:
            self.exploreRequested.emit(self.controller.run_dir)

    # -- events --------------------------------------------------------------------------------

    @Slot(object)
    def on_event(self, ev: Event) -> None:
        """The page's state and curves follow ``ev``; its sentence (``events.describe``, the same
        the CLI prints) goes to the log."""
        if isinstance(ev, RunStarted):
            cfg = self.controller.last_config
            self.run_plots.probe_size = cfg.probe_size if cfg is not None else 0
        self.run_plots.on_event(ev)
        if isinstance(ev, StepLogged):
            self._on_step(ev)
        elif isinstance(ev, Preparing):
            self._on_preparing(ev)
        elif isinstance(ev, MonitorLogged):
            self._on_monitor(ev)
        elif isinstance(ev, RunStarted):
            self._on_started(ev)
        elif isinstance(ev, RunStopped):
            self._on_stopped(ev)
        elif isinstance(ev, RunFinished):
            self._on_finished(ev)
        elif isinstance(ev, PlanRevised):
            self.total_steps = ev.total_steps
            self.progress.setMaximum(ev.total_steps)
        text = describe(ev)
        for line in text.splitlines() if text else ():
            self.append_log(line)

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
        self.progress.setRange(0, max(1, self.total_steps))
        self.progress.setValue(ev.step)

    def _on_started(self, ev: RunStarted) -> None:
        self._preparing_text = self._stage = ""
        self.total_steps = ev.total_steps
        self._first_check = self._last_check = None
        self.verdict_label.setText(STARTED)
        self.verdict_label.setProperty("sign", "")
        self.verdict_label.style().polish(self.verdict_label)
        self.progress.setRange(0, max(1, ev.total_steps))
        self.progress.setValue(ev.start_step)
        self.stats["device"].set(format_device(ev.device))
        self.stats["step"].set(f"{ev.start_step:,} / {ev.total_steps:,}")

    def _on_step(self, ev: StepLogged) -> None:
        done = ev.step + 1
        self.stats["step"].set(f"{done:,} / {self.total_steps:,}")
        self.stats["epoch"].set(f"{ev.epoch + 1:,}")
        self.stats["loss"].set(f"{self.run_plots.smoothed_loss:.4f}")
        self.stats["speed"].set(f"{ev.images_per_s:,.0f}")
        self.stats["eta"].set(format_eta(ev.eta_s))
        self.progress.setValue(done)

    def _on_monitor(self, ev: MonitorLogged) -> None:
        if ev.step == 0 or self._first_check is None:
            self._first_check = ev
        self._last_check = ev
        self.verdict_label.setText(verdict_sentence(ev, self._first_check))
        self.verdict_label.setProperty("sign", _sign_word(ev))
        self.verdict_label.style().polish(self.verdict_label)

    def _on_finished(self, ev: RunFinished) -> None:
        self.progress.setValue(self.progress.maximum())
        last = self._last_check
        words = "" if last is None else " " + verdict_sentence(last, self._first_check, True)
        if Path(ev.recommended).name == "best":  # as the Export page names it
            words += f" Export the Best checkpoint, {BEST_MEANS}."
        self.verdict_label.setText(f"Finished.{words}" if words else "Finished.")

    def append_log(self, text: str) -> None:
        self.log.appendPlainText(f"{time.strftime('%H:%M:%S')}  {text}")

    @Slot(str, str)
    def show_error(self, message: str, details: str = "") -> None:
        """A non-blocking message box: the window stays usable, the controls are already
        re-enabled."""
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
        self.run_plots.redraw_now()

    # the plots, as the page's own (tests and the window read them here)
    loss_plot = property(lambda self: self.run_plots.loss_plot)
    health_plot = property(lambda self: self.run_plots.health_plot)
    rank_plot = property(lambda self: self.run_plots.rank_plot)
    lr_plot = property(lambda self: self.run_plots.lr_plot)
    plots = property(lambda self: self.run_plots.plots)
