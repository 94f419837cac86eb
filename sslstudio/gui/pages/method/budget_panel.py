"""The Method page's "Time available" choice: plan the whole run for 10 minutes, an hour, a night.

A view over :func:`sslstudio.core.train.budget.plan_budget`, run off the GUI thread (it times a
few real steps). The page hands it the current config and the folder's size; ``planned`` carries
the :class:`BudgetPlan` back, whose config the page shows in its forms, where every choice can
still be changed. The run's own deadline keeps it on time either way.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from PySide6.QtCore import QTimer, Signal, Slot
from PySide6.QtWidgets import QComboBox, QPushButton, QSpinBox, QVBoxLayout, QWidget

from sslstudio.config import DEFAULT_TIME_S, RunConfig
from sslstudio.gui.run.worker import FunctionWorker, ThreadJob
from sslstudio.gui.widgets.panels import hbox, hint

CHOICES = (
    ("10 minutes (recommended)", int(DEFAULT_TIME_S)),
    ("1 hour", 3600),
    ("Overnight (10 hours)", 36000),
    ("Custom…", -1),
    ("No limit: as many epochs as set", 0),  # listed while Advanced is open
)
NO_LIMIT = len(CHOICES) - 1


def finish_text(seconds: float, now: datetime) -> str:
    """'Planned finish: about 14:32 if started now (10 min)'; the epochs' own pace otherwise."""
    if seconds <= 0:
        return (
            "No time limit: the run lasts as long as its epochs take (Estimate time says how long)."
        )
    end = now + timedelta(seconds=seconds)
    day = "" if end.date() == now.date() else " tomorrow"
    minutes = round(seconds / 60)
    length = f"{minutes} min" if minutes < 120 else f"{seconds / 3600:.3g} h"
    return f"Planned finish: about <b>{end:%H:%M}</b>{day} if started now ({length})."


class BudgetPanel(QWidget):
    """Signals: ``planned(object)`` (a BudgetPlan), ``chosen(float)`` (the seconds chosen; 0 is
    no limit). A time counts from the moment it is chosen; planning only refines the settings."""

    planned = Signal(object)
    chosen = Signal(float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        col = QVBoxLayout(self)
        col.setContentsMargins(0, 0, 0, 0)
        col.setSpacing(6)
        self.choice = QComboBox()
        self.choice.setObjectName("timeAvailable")
        for text, seconds in CHOICES:
            self.choice.addItem(text, seconds)
        self.choice.setToolTip(
            "Plan the whole run (method, size, batch, schedule) to finish in this time"
        )
        self.minutes = QSpinBox()
        self.minutes.setRange(1, 7 * 24 * 60)
        self.minutes.setValue(30)
        self.minutes.setSuffix(" min")
        self.minutes.setVisible(False)
        self.minutes.valueChanged.connect(self._on_choice)
        self.button = QPushButton("Plan for this time")
        self.button.setToolTip("Time a few real steps here and plan the run to end on time")
        self.button.setEnabled(False)
        col.addLayout(hbox(self.choice, self.minutes))
        col.addLayout(hbox(self.button, None))
        self.summary = hint("")
        self.summary.setObjectName("budgetPlan")
        self.summary.setVisible(False)
        col.addWidget(self.summary)
        self.finish = hint("")
        self.finish.setObjectName("plannedFinish")
        col.addWidget(self.finish)
        self._clock = QTimer(self)  # the finish moves on with the clock until Start
        self._clock.setInterval(20_000)
        self._clock.timeout.connect(self.show_finish)
        self._clock.start()
        self.set_advanced(False)
        self.show_finish()
        self.choice.currentIndexChanged.connect(self._on_choice)
        self.button.clicked.connect(self.plan)
        self._job: ThreadJob | None = None
        self._request: tuple[RunConfig, int] | None = None
        self._ready = False
        self.plan_result = None

    def seconds(self) -> float:
        s = self.choice.currentData()
        return float(self.minutes.value() * 60 if s == -1 else s)

    def set_advanced(self, shown: bool) -> None:
        """'No limit' is offered only with the advanced settings (the epochs it relies on)."""
        view = self.choice.view()
        if hasattr(view, "setRowHidden"):
            view.setRowHidden(NO_LIMIT, not shown)

    def show_seconds(self, seconds: float) -> None:
        """Show ``seconds`` (a loaded config's time) without emitting ``chosen``."""
        index = self.choice.findData(int(seconds)) if float(seconds).is_integer() else -1
        self.choice.blockSignals(True)
        self.minutes.blockSignals(True)
        if index < 0:
            index = self.choice.findData(-1)
            self.minutes.setValue(max(1, round(seconds / 60)))
        self.choice.setCurrentIndex(index)
        self.minutes.setVisible(self.choice.currentData() == -1)
        self.choice.blockSignals(False)
        self.minutes.blockSignals(False)
        self.show_finish()

    @Slot()
    def show_finish(self) -> None:
        self.finish.setText(finish_text(self.seconds(), datetime.now()))

    def set_ready(self, ready: bool) -> None:
        """The training engine is loaded (planning needs torch)."""
        self._ready = ready
        self._update()

    def set_request(self, cfg: RunConfig, num_images: int | None) -> None:
        """What to plan when asked: the page's current config and the folder's image count."""
        self._request = (cfg, num_images) if num_images else None
        self._update()

    @property
    def busy(self) -> bool:
        return self._job is not None

    def _update(self) -> None:
        self.button.setEnabled(
            self._ready and self._request is not None and self.seconds() > 0 and not self.busy
        )
        if self._request is None and self.seconds() > 0:
            self.button.setToolTip(
                "Choose a folder first: the plan depends on how many images it has"
            )

    @Slot()
    def _on_choice(self) -> None:
        self.minutes.setVisible(self.choice.currentData() == -1)
        self.plan_result = None  # a plan was for the time chosen before
        self.summary.setVisible(False)
        self.show_finish()
        self.chosen.emit(self.seconds())
        self._update()

    @Slot()
    def plan(self) -> None:
        if self._request is None or self.busy or self.seconds() <= 0:
            return
        from sslstudio.core.train.budget import (
            plan_budget,
        )  # torch is loaded already (catalog ready)

        cfg, n = self._request
        seconds = self.seconds()
        worker = FunctionWorker(lambda: plan_budget(cfg, seconds, n), tag=seconds)
        worker.done.connect(self._on_done)
        worker.failed.connect(self._on_failed)
        self._job = ThreadJob(worker, "sslstudio-budget", self)
        self._job.ended.connect(self._on_ended)
        self.summary.setText("Timing a few steps on this machine…")
        self.summary.setVisible(True)
        self._update()

    @Slot(object, object)
    def _on_done(self, seconds: object, plan: object) -> None:
        if seconds != self.seconds():
            return  # the choice changed while planning
        self.plan_result = plan
        head, *why = plan.summary().split("\n  - ")
        self.summary.setText(head + "  (hover for why)")
        self.summary.setToolTip("\n".join(f"• {w}" for w in why))
        self.planned.emit(plan)

    @Slot(object, str)
    def _on_failed(self, _tag: object, message: str) -> None:
        self.summary.setText(f"Could not plan: {message}")

    @Slot()
    def _on_ended(self) -> None:
        self._job = None
        self._update()

    def shutdown(self) -> None:
        if self._job is not None:
            self._job.wait(30_000)
