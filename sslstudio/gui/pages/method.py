"""Step 3, Method: how to learn (method and its options), with which network, for how long, where."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from sslstudio.config import RunConfig
from sslstudio.core.schedules import cosine_schedule, scaled_lr
from sslstudio.gui import theme
from sslstudio.gui.catalog import Catalog
from sslstudio.gui.command import command_line, missing_flags
from sslstudio.gui.widgets.config_form import ConfigForm
from sslstudio.gui.widgets.panels import Card, Page, hbox, hint

DISPLAY_NAMES = {
    "simclr": "SimCLR", "byol": "BYOL", "vicreg": "VICReg", "barlowtwins": "Barlow Twins", "dino": "DINO",
    "moco": "MoCo v2", "simsiam": "SimSiam", "swav": "SwAV", "mae": "MAE", "rotnet": "RotNet",
}  # fmt: skip
RUN_SECTIONS = (
    ("Network", ("backbone", "image_size", "small_stem")),
    ("Length", ("batch_size", "epochs", "max_steps")),
    ("Where and how often", ("device", "seed", "checkpoint_every", "monitor_every")),
)
RUN_LABELS = {"max_steps": "Max steps (0 = all)", "monitor_every": "Health check every",
              "checkpoint_every": "Checkpoint every", "small_stem": "Small-image stem"}  # fmt: skip
PLOT_POINTS = 4000  # a 10^8-step schedule is drawn from this many points, not allocated in full
ASSUMED_IMAGES = 1000


class MethodPage(Page):
    """Signals: ``configChanged()``, ``imageSizeChanged(int)``, ``methodChanged(str)``."""

    configChanged = Signal()
    imageSizeChanged = Signal(int)
    methodChanged = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(
            "Method and training",
            "Choose how the network learns from unlabelled images, which network, and for how long. "
            "The defaults are a sound start.",
            parent,
        )
        self.catalog: Catalog | None = None
        self.num_images: int | None = None
        self.context = RunConfig()  # folder, preset, augment: from the other pages, for the command
        self._method = self.context.method
        self._options: dict[str, dict[str, Any]] = {}  # per-method options, kept across switching
        self.options_form: ConfigForm | None = None
        self._image_size = self.context.image_size

        row = QHBoxLayout()
        row.setSpacing(12)
        columns = ((self._build_method_card(),), (self._build_settings_card(), self._build_command_card()),
                   (self._build_optim_card(), self._build_schedule_card()))
        for stretch, widgets in zip((10, 11, 11), columns, strict=True):
            col = QVBoxLayout()
            col.setSpacing(12)
            for i, w in enumerate(widgets):
                col.addWidget(w, 1 if i == len(widgets) - 1 else 0)  # the last card takes the slack
            row.addLayout(col, stretch)
        self.body.addLayout(row, 1)
        self._refresh()

    def _build_method_card(self) -> QWidget:
        card = Card("Method")
        card.setMinimumWidth(280)
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
        self.options_box = QVBoxLayout()
        card.layout_.addLayout(self.options_box)
        card.layout_.addStretch(1)
        return card

    def _build_settings_card(self) -> QWidget:
        card = Card("Network and training")
        cfg = self.context
        self.run_form = ConfigForm(
            cfg, include=[n for _, group in RUN_SECTIONS for n in group], sections=RUN_SECTIONS,
            labels=RUN_LABELS, choices={"backbone": [cfg.backbone]},
        )
        self.run_form.valueChanged.connect(self._on_changed)
        card.add(self.run_form)
        self.backbone_description = hint("")
        self.device_label = hint("")
        card.add(self.backbone_description)
        card.add(self.device_label)
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
        self.copy_button.setToolTip("Copy the equivalent `sslstudio train` command line to the clipboard")
        self.copy_button.clicked.connect(self.copy_command)
        card.layout_.addLayout(hbox(self.command_note, None, self.copy_button))
        return card

    def _build_optim_card(self) -> QWidget:
        card = Card("Optimizer")
        self.optim_form = ConfigForm(self.context.optim, labels={
            "lr": "Learning rate", "warmup_epochs": "Warm-up epochs", "min_lr_ratio": "Final LR (share)"})
        self.optim_form.valueChanged.connect(self._on_changed)
        card.add(self.optim_form)
        return card

    def _build_schedule_card(self) -> QWidget:
        card = Card("Learning-rate schedule")
        self.schedule_plot = pg.PlotWidget()
        self.schedule_plot.setObjectName("schedulePlot")
        item = self.schedule_plot.getPlotItem()
        item.setLabel("bottom", "step")
        item.showGrid(x=True, y=True, alpha=0.2)
        item.hideButtons()
        item.setMenuEnabled(False)
        self.schedule_plot.setMinimumHeight(110)
        self.schedule_curve = item.plot([], [], pen=pg.mkPen(theme.current().curve("lr"), width=2))
        card.add(self.schedule_plot, 1)
        self.schedule_caption = hint("")
        card.add(self.schedule_caption)
        return card

    # -- inputs ---------------------------------------------------------------------------------

    def set_catalog(self, catalog: Catalog) -> None:
        self.catalog = catalog
        combo = self.run_form.control("backbone")
        assert isinstance(combo, QComboBox)
        current = combo.currentText()
        combo.blockSignals(True)
        combo.clear()
        combo.addItems(list(catalog.backbones))
        combo.setCurrentText(current if current in catalog.backbones else next(iter(catalog.backbones)))
        combo.blockSignals(False)
        self.method_list.blockSignals(True)
        self.method_list.clear()
        for name, info in catalog.methods.items():
            item = QListWidgetItem(DISPLAY_NAMES.get(name, name))
            item.setData(Qt.ItemDataRole.UserRole, name)
            item.setToolTip(info.paper)
            self.method_list.addItem(item)
        self.method_list.blockSignals(False)
        # as tall as its rows (up to 8): a short list should not leave an empty box
        rows = min(8, self.method_list.count())
        self.method_list.setFixedHeight(rows * self.method_list.sizeHintForRow(0) + 2 * self.method_list.frameWidth() + 10)
        self._select_method(self._method if self._method in catalog.methods else next(iter(catalog.methods)))
        self._refresh()

    def set_num_images(self, n: int | None) -> None:
        self.num_images = n
        self._refresh()

    def set_context(self, cfg: RunConfig) -> None:
        """Folder and augmentation chosen on the other pages (for the command line)."""
        self.context = cfg
        self._refresh()

    # -- config ---------------------------------------------------------------------------------

    def apply_config(self, cfg: RunConfig) -> None:
        self.run_form.set_value(cfg)
        self.optim_form.set_value(cfg.optim)
        self._options[cfg.method] = dict(cfg.method_options)
        self._method = cfg.method
        if self.catalog is not None and cfg.method in self.catalog.methods:
            self._select_method(cfg.method)
        self._emit_size()
        self._refresh()

    def update_config(self, cfg: RunConfig) -> RunConfig:
        cfg = dataclasses.replace(cfg, **self.run_form.values(), optim=self.optim_form.value())
        return dataclasses.replace(cfg, method=self._method, method_options=self.method_options())

    def method_options(self) -> dict[str, Any]:
        if self.options_form is not None:
            return dataclasses.asdict(self.options_form.value())
        return dict(self._options.get(self._method, {}))

    def _select_method(self, name: str) -> None:
        for i in range(self.method_list.count()):
            if self.method_list.item(i).data(Qt.ItemDataRole.UserRole) == name:
                self.method_list.setCurrentRow(i)  # -> _on_method_chosen
                return

    def _on_method_chosen(self, item: QListWidgetItem | None, _previous: object = None) -> None:
        if item is None or self.catalog is None:
            return
        if self.options_form is not None:
            self._options[self._method] = dataclasses.asdict(self.options_form.value())
        name = item.data(Qt.ItemDataRole.UserRole)
        info = self.catalog.methods[name]
        self._method = name
        self.summary.setText(info.summary)
        cite, _, url = info.paper.partition(", http")
        self.paper.setText(f'Paper: <a href="http{url}">{cite}</a>' if url else f"Paper: {info.paper}")
        if self.options_form is not None:
            self.options_form.setParent(None)
            self.options_form.deleteLater()
        known = {f.name for f in dataclasses.fields(info.config_cls)}
        saved = {k: v for k, v in self._options.get(name, {}).items() if k in known}
        try:
            start = info.config_cls(**saved)
        except (TypeError, ValueError):
            start = info.config_cls()
        self.options_form = ConfigForm(start)
        self.options_form.setObjectName("methodOptions")
        self.options_form.valueChanged.connect(self._on_changed)
        self.options_box.addWidget(self.options_form)
        self.methodChanged.emit(name)
        self._on_changed()

    def _on_changed(self) -> None:
        self._emit_size()
        self._refresh()
        self.configChanged.emit()

    def _emit_size(self) -> None:
        size = int(self.run_form.values()["image_size"])
        if size != self._image_size:
            self._image_size = size
            self.imageSizeChanged.emit(size)

    # -- derived views ----------------------------------------------------------------------------

    def _refresh(self) -> None:
        cfg = self.update_config(self.context)
        backbone = cfg.backbone
        if self.catalog is not None:
            self.backbone_description.setText(f"{backbone}: {self.catalog.backbones.get(backbone, '')}")
            self.device_label.setText(f"Will train on: {self.catalog.describe_device(cfg.device)}")
        else:
            self.device_label.setText("Will train on: (checking the hardware…)")
        self._draw_schedule(cfg)
        defaults = {}
        if self.catalog is not None and cfg.method in self.catalog.methods:
            defaults = dataclasses.asdict(self.catalog.methods[cfg.method].config_cls())
        self.command_edit.setPlainText(command_line(cfg, defaults))
        missing = missing_flags(cfg)
        self.command_note.setText("Not expressible as flags: " + ", ".join(missing) if missing else "")
        self.command_note.setToolTip("Save these in a config file and pass it with --config" if missing else "")
        self.command_note.setVisible(bool(missing))

    def _draw_schedule(self, cfg: RunConfig) -> None:
        # mirrors trainer.make_plan, which cannot be imported here without torch
        n = self.num_images or ASSUMED_IMAGES
        batch = min(cfg.batch_size, n)
        spe = max(1, n // batch)
        total = spe * cfg.epochs
        if cfg.max_steps:
            total = min(total, cfg.max_steps)
        peak = scaled_lr(cfg.optim.lr, batch)
        warm = int(round(cfg.optim.warmup_epochs * spe))
        points = min(total, PLOT_POINTS)
        lr = cosine_schedule(peak, peak * cfg.optim.min_lr_ratio, points, round(warm * points / total))
        x = np.arange(points) * (total / points)
        self.schedule_curve.setData(x, lr)
        where = f"{n:,} images" if self.num_images else f"{ASSUMED_IMAGES:,} images assumed (no folder scanned yet)"
        self.schedule_caption.setText(
            f"{total:,} steps = {cfg.epochs:,} epochs × {spe:,} step{'s' if spe != 1 else ''} of {batch:,} images ({where}); "
            f"peak {peak:.3g} after {warm:,} warm-up steps."
        )

    def copy_command(self) -> None:
        QApplication.clipboard().setText(self.command_edit.toPlainText())
