"""Step 3, Method: how to learn (method and its options), with which network, for how long, where.

The method list and each method's options form come from the registry (``METHODS`` via the
catalog) and the method's ``Config`` dataclass: a new method appears here by registering itself.
"""

from __future__ import annotations

import dataclasses
import html
import os
from typing import Any

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from sslstudio.config import OptimConfig, RunConfig
from sslstudio.gui.catalog import Catalog, MethodInfo, gui_threads
from sslstudio.gui.config_model import OwnEdits, RunConfigModel
from sslstudio.gui.pages.method.budget_panel import BudgetPanel
from sslstudio.gui.pages.method.command import command_line, missing_flags
from sslstudio.gui.pages.method.estimate_panel import EstimatePanel
from sslstudio.gui.pages.method.options import options_config, plain_options
from sslstudio.gui.pages.method.schedule_plots import ASSUMED_IMAGES, ScheduleCard, momentum_fields
from sslstudio.gui.widgets.config_form import ConfigForm
from sslstudio.gui.widgets.panels import Card, Page, hbox, hint, with_shortcut
from sslstudio.gui.widgets.words import RUN_LABELS  # one vocabulary with Runs

RUN_SECTIONS = (
    ("Network", ("backbone", "image_size", "progressive_from", "small_stem")),
    ("Length", ("batch_size", "epochs", "max_steps")),
    ("Where and how often", ("device", "threads", "seed", "checkpoint_every", "monitor_every")),
)
RUN_FIELDS = frozenset(n for _, group in RUN_SECTIONS for n in group)


class MethodPage(Page):
    """Edits the model's method, its options, network, length, optimiser and time budget; shows
    the command line, schedules and estimates of the whole config.

    Signals: ``budgetPlanned(object)`` (a BudgetPlan whose config the window loads)."""

    EDITS = (*RUN_FIELDS, "method", "method_options", "optim", "time_budget_s")

    budgetPlanned = Signal(object)

    def __init__(self, model: RunConfigModel, parent: QWidget | None = None) -> None:
        super().__init__(
            "Method and training",
            "Choose how the network learns from unlabelled images, which network, and for how "
            "long. The defaults are a sound start: they train for 10 minutes.",
            parent,
        )
        self.model = model
        self._edits = OwnEdits(model)
        self.catalog: Catalog | None = None
        self.num_images: int | None = None
        self._options: dict[str, dict[str, Any]] = {}  # per-method options, kept across switching
        self._options[model.config.method] = dict(model.config.method_options)
        self.options_form: ConfigForm | None = None
        self._form_method = ""  # the method whose options the form shows
        self._loading = False  # True while the model's (loaded) method is being shown

        row = QHBoxLayout()
        row.setSpacing(12)
        columns = (
            (self._build_method_card(),),
            (self._build_settings_card(), self._build_command_card()),
            (self._build_budget_card(), self._build_optim_card(), self._build_schedule_card()),
        )
        for stretch, widgets in zip((10, 11, 11), columns, strict=True):
            col = QVBoxLayout()
            col.setSpacing(12)
            for i, w in enumerate(widgets):
                col.addWidget(w, 1 if i == len(widgets) - 1 else 0)  # the last card takes the slack
            row.addLayout(col, stretch)
        self.body.addLayout(row, 1)
        for a, b in (
            (self.method_list, self.options_scroll),
            (self.options_scroll, self.run_form),
            (self.run_form, self.estimate_button),
            (self.estimate_button, self.copy_button),
            (self.copy_button, self.optim_form),
        ):
            QWidget.setTabOrder(a, b)
        model.changed.connect(self._on_model_changed)
        self._edits.update(**self.run_form.values())  # this machine's thread count, from the start
        self.show_advanced(False)
        self._edits.update(time_budget_s=self.budget.seconds())  # time first: the default time
        self._refresh()

    def _build_method_card(self) -> QWidget:
        card = Card("Method")
        card.setMinimumWidth(200)  # the page fits beside the steps at the window's minimum width
        self.method_list = QListWidget()
        self.method_list.setObjectName("methods")
        self.method_list.addItem("Loading the training engine…")
        self.method_list.setMinimumHeight(44)
        self.method_list.currentItemChanged.connect(self._on_method_chosen)
        card.add(self.method_list)
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        self.summary.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        card.add(self.summary)
        self.paper = hint("")
        self.paper.setOpenExternalLinks(True)
        self.paper.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction)
        card.add(self.paper)
        options_title = QLabel("Method options")
        options_title.setObjectName("formSection")
        card.add(options_title)
        self._advanced: list[QWidget] = [options_title]
        self.options_scroll = QScrollArea()  # a method with many options scrolls, the page does not
        self.options_scroll.setObjectName("formScroll")
        self.options_scroll.setWidgetResizable(True)
        self.options_scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        body = QWidget()
        body.setObjectName("formScrollBody")
        self.options_box = QVBoxLayout(body)
        self.options_box.setContentsMargins(0, 0, 8, 0)
        self.options_box.addStretch(1)
        self.options_scroll.setWidget(body)
        card.add(self.options_scroll, 1)
        self._advanced.append(self.options_scroll)
        card.layout_.addStretch(0)  # takes the slack while the options are hidden
        self._method_card = card
        return card

    def _build_settings_card(self) -> QWidget:
        card = Card("Network and training")
        cfg = self.model.config
        self.run_form = ConfigForm(
            cfg,
            include=[n for _, group in RUN_SECTIONS for n in group],
            sections=RUN_SECTIONS,
            labels=RUN_LABELS,
            choices={"backbone": [cfg.backbone]},
        )
        threads = self.run_form.control("threads")
        assert isinstance(threads, QSpinBox)
        threads.setRange(1, max(1, os.cpu_count() or 1))
        threads.setValue(cfg.threads if 1 <= cfg.threads <= threads.maximum() else gui_threads())
        threads.setToolTip(
            "CPU threads for training. The default leaves one core to the window, so it stays "
            "smooth."
        )
        self.run_form.valueChanged.connect(self._on_run_form_changed)
        card.add(self.run_form)
        self.backbone_description = hint("")
        self.device_label = hint("")
        card.add(self.backbone_description)
        card.add(self.device_label)
        self.all_gpus = QCheckBox("Use every GPU (torchrun, one process per GPU)")
        self.all_gpus.setToolTip(
            "Trains with one process per GPU under torchrun, the batch shared between them; "
            "the run is followed here as usual (pause is not offered)."
        )
        self.all_gpus.setVisible(False)
        self.all_gpus.toggled.connect(self._refresh)
        card.add(self.all_gpus)
        self.estimates = card.add(EstimatePanel())
        self.estimate_button, self.estimate_label = self.estimates.button, self.estimates.label
        self.estimate_detail = self.estimates.detail
        self.estimate_button.clicked.connect(self.estimate)
        return card

    def _build_command_card(self) -> QWidget:
        card = Card("Command line")
        self.command_edit = QPlainTextEdit()
        self.command_edit.setObjectName("command")
        self.command_edit.setReadOnly(True)
        self.command_edit.setMinimumHeight(48)
        self.command_edit.setToolTip("The same run from a terminal, a script or a cluster job")
        card.add(self.command_edit, 1)
        self.command_note = hint("")
        self.copy_button = QPushButton("Copy as command")
        self.copy_button.setToolTip(
            with_shortcut("Copy the equivalent `sslstudio train` command line", "Ctrl+Shift+C")
        )
        self.copy_button.clicked.connect(self.copy_command)
        card.layout_.addLayout(hbox(self.command_note, None, self.copy_button))
        return card

    def _build_budget_card(self) -> QWidget:
        card = Card("Time available")
        self.budget = card.add(BudgetPanel())
        self.budget.planned.connect(self.budgetPlanned)
        self.budget.chosen.connect(lambda s: self._edits.update(time_budget_s=s))
        self.advanced_button = QPushButton("Show advanced settings")
        self.advanced_button.setObjectName("advancedToggle")
        self.advanced_button.setCheckable(True)
        self.advanced_button.setToolTip(
            "Method options, the optimiser, and training with no time limit"
        )
        self.advanced_button.toggled.connect(self.show_advanced)
        card.add(self.advanced_button)
        return card

    def _on_run_form_changed(self) -> None:
        values = self.run_form.values()
        if values.get("epochs") != self.model.config.epochs and self.model.config.time_budget_s:
            # epochs set by hand: the run lasts as many epochs as that, not a time
            values["time_budget_s"] = 0.0
            self.budget.show_seconds(0.0)
        self._edits.update(**values)

    def show_advanced(self, shown: bool) -> None:
        """The method's options, the optimiser and 'No limit': for those who know them."""
        self.advanced_button.setChecked(shown)
        self.advanced_button.setText(
            "Hide advanced settings" if shown else "Show advanced settings"
        )
        for w in self._advanced:
            w.setVisible(shown)
        lay = self._method_card.layout_
        lay.setStretch(lay.count() - 1, 0 if shown else 1)
        self.budget.set_advanced(shown)

    def _build_optim_card(self) -> QWidget:
        card = Card("Optimizer")
        self.optim_form = ConfigForm(
            self.model.config.optim,
            labels={
                "lr": "Learning rate",
                "warmup_epochs": "Warm-up epochs",
                "min_lr_ratio": "Final LR (share)",
            },
        )
        self.optim_form.valueChanged.connect(
            lambda: self._edits.update(optim=self.optim_form.value())
        )
        card.add(self.optim_form)
        self._advanced.append(card)
        return card

    def _build_schedule_card(self) -> QWidget:
        self.schedules = ScheduleCard()
        self.schedule_plot, self.schedule_curve = (
            self.schedules.schedule_plot,
            self.schedules.schedule_curve,
        )
        self.schedule_caption = self.schedules.caption
        return self.schedules

    # -- inputs ---------------------------------------------------------------------------------

    def set_catalog(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.run_form.set_choices("backbone", list(catalog.backbones))
        self.method_list.blockSignals(True)
        self.method_list.clear()
        for name, info in catalog.methods.items():
            item = QListWidgetItem(info.display)
            item.setData(Qt.ItemDataRole.UserRole, name)
            item.setToolTip(info.paper)
            self.method_list.addItem(item)
        self.method_list.blockSignals(False)
        # as tall as its rows, up to 7: more scroll, and the options below keep their room
        rows = min(7, self.method_list.count())
        self.method_list.setFixedHeight(
            rows * self.method_list.sizeHintForRow(0) + 2 * self.method_list.frameWidth() + 10
        )
        method = self.model.config.method
        self._select_method(method if method in catalog.methods else next(iter(catalog.methods)))
        self.estimates.set_ready(True)
        self.budget.set_ready(True)
        self._refresh()

    def set_num_images(self, n: int | None) -> None:
        self.num_images = n
        self._refresh()

    def set_run_active(self, active: bool) -> None:
        """No estimate while a run trains: both would compete for the cores (and torch's
        threads)."""
        self.estimates.set_blocked(active)

    def processes(self) -> int:
        """Training processes: every GPU when that box is ticked and offered, else 1."""
        if (
            self.catalog is None
            or not self.all_gpus.isVisibleTo(self)
            or not self.all_gpus.isChecked()
        ):
            return 1
        return max(1, self.catalog.cuda_count)

    def threads(self) -> int:
        return self.model.config.threads

    def set_threads(self, n: int) -> None:
        """``n`` CPU threads for training (0 or out of range: all cores but one)."""
        control = self.run_form.control("threads")
        assert isinstance(control, QSpinBox)
        control.setValue(n if control.minimum() <= n <= control.maximum() else gui_threads())

    # -- config ---------------------------------------------------------------------------------

    def _on_model_changed(self, cfg: RunConfig, names: frozenset[str]) -> None:
        """Show what others changed (a loaded config, a plan); every change redraws the views."""
        shown = self._edits.others(names)
        if "time_budget_s" in shown:
            self.budget.show_seconds(cfg.time_budget_s)
        if shown & RUN_FIELDS:
            self.run_form.set_value(cfg)
        if "optim" in shown:
            self.optim_form.set_value(cfg.optim)
        if shown & {"method", "method_options"}:
            self._show_method(cfg)
        self._refresh()

    def _show_method(self, cfg: RunConfig) -> None:
        """The model's method selected, its options form filled from the model's options."""
        self._remember_form()
        self._options[cfg.method] = dict(cfg.method_options)
        if self.catalog is None or cfg.method not in self.catalog.methods:
            return
        self._loading = True  # shown, not chosen: no write back, the config's optimiser stays
        try:
            if self._form_method == cfg.method:
                self._show_options(cfg.method)  # the same method: its form gets the new values
            else:
                self._select_method(cfg.method)  # -> _on_method_chosen
        finally:
            self._loading = False

    def options_as_shown(self, method: str, options: dict[str, Any]) -> dict[str, Any]:
        """``options`` of ``method`` as its form would show them: every field, unknown ones
        dropped (a loaded config's options, as Start would have them)."""
        if self.catalog is None or method not in self.catalog.methods:
            return dict(options)
        return plain_options(options_config(self.catalog.methods[method], options))

    def method_options(self) -> dict[str, Any]:
        """Plain JSON values (an Enum option as its value): they are saved in config.json."""
        if self.options_form is not None:
            return plain_options(self.options_form.value())
        return dict(self._options.get(self.model.config.method, {}))

    def _select_method(self, name: str) -> None:
        for i in range(self.method_list.count()):
            if self.method_list.item(i).data(Qt.ItemDataRole.UserRole) == name:
                self.method_list.setCurrentRow(i)  # -> _on_method_chosen
                return

    def _on_method_chosen(self, item: QListWidgetItem | None, _previous: object = None) -> None:
        if item is None or self.catalog is None:
            return
        self._remember_form()
        name = item.data(Qt.ItemDataRole.UserRole)
        info = self.catalog.methods[name]
        self.summary.setText(info.summary)
        cite, _, url = info.paper.partition(", http")
        paper = f'Paper: <a href="http{url}">{cite}</a>' if url else f"Paper: {info.paper}"
        if info.paper_recipe:  # the defaults here suit short runs; this is what long ones use
            paper += f"<br>At scale the paper trains with: {html.escape(info.paper_recipe)}."
        self.paper.setText(paper)
        self._show_options(name)
        if self._loading:
            return
        self._use_method_optim(info)
        self._edits.update(
            method=name, method_options=self.method_options(), optim=self.optim_form.value()
        )

    def _use_method_optim(self, info: MethodInfo) -> None:
        """A method chosen by the user brings its own optimiser, lr and weight decay (the
        settings it was tested with); the warm-up and final-lr choices stay."""
        tested = dataclasses.replace(OptimConfig(), **info.optim_defaults)
        current = self.optim_form.value()
        self.optim_form.set_value(
            dataclasses.replace(
                current, optimizer=tested.optimizer, lr=tested.lr, weight_decay=tested.weight_decay
            )
        )

    def _remember_form(self) -> None:
        """Keep the shown form's values under its own method, for when the user comes back to it."""
        if self.options_form is not None and self._form_method:
            self._options[self._form_method] = self.method_options()

    def _show_options(self, name: str) -> None:
        """The options form of method ``name``, filled from what was chosen or loaded for it."""
        info = self.catalog.methods[name]
        if self.options_form is not None:
            self.options_form.setParent(None)
            self.options_form.deleteLater()
        self.options_form = ConfigForm(options_config(info, self._options.get(name, {})))
        self.options_form.setObjectName("methodOptions")
        self.options_form.valueChanged.connect(
            lambda: self._edits.update(method_options=self.method_options())
        )
        self.options_box.insertWidget(0, self.options_form)
        self._form_method = name

    # -- derived views ----------------------------------------------------------------------------

    def _refresh(self) -> None:
        cfg = self.model.config
        info = self.catalog.methods.get(cfg.method) if self.catalog is not None else None
        if self.catalog is not None:
            self.backbone_description.setText(
                f"{cfg.backbone}: {self.catalog.backbones.get(cfg.backbone, '')}"
            )
            self.device_label.setText(
                f"Will train on: {self.catalog.describe_device(cfg.device, cfg.threads)}"
            )
            many = self.catalog.cuda_count > 1 and cfg.device in ("auto", "cuda")
            self.all_gpus.setText(
                f"Use all {self.catalog.cuda_count} GPUs (torchrun, one process per GPU)"
            )
            self.all_gpus.setVisible(many and info is not None and info.distributed)
        else:
            self.device_label.setText("Will train on: (checking the hardware…)")
        options = self.options_form.value() if self.options_form is not None else None
        self.schedules.draw(
            cfg, self.num_images, options, momentum_fields(info.config_cls) if info else None
        )
        defaults = dataclasses.asdict(info.config_cls()) if info is not None else {}
        command = command_line(cfg, defaults)
        if self.processes() > 1 and command.startswith("sslstudio train"):
            command = (
                f"torchrun --standalone --nproc_per_node={self.processes()} -m sslstudio train"
                + command[len("sslstudio train") :]
                + " --distributed"
            )
        self.command_edit.setPlainText(command)
        missing = missing_flags(cfg)
        self.command_note.setText(
            "Not expressible as flags: " + ", ".join(missing) if missing else ""
        )
        self.command_note.setToolTip(
            "Save these in a config file and pass it with --config" if missing else ""
        )
        self.command_note.setVisible(bool(missing))
        self.estimates.settings_changed(cfg, self.num_images)
        self.budget.set_request(dataclasses.replace(cfg, time_budget_s=0.0), self.num_images)

    def copy_command(self) -> None:
        QApplication.clipboard().setText(self.command_edit.toPlainText())

    # -- estimate ---------------------------------------------------------------------------------

    @property
    def is_estimating(self) -> bool:
        return self.estimates.busy

    @Slot()
    def estimate(self) -> None:
        """Measure a few steps of these settings in the background (a second click cancels)."""
        self.estimates.estimate(self.model.config, self.num_images, ASSUMED_IMAGES)

    def shutdown(self) -> None:
        self.estimates.cancel()
        self.budget.shutdown()
