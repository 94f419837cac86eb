"""Step 2, Augment: a domain preset, every augmentation parameter, and a live preview.

The preview is made by :class:`sslstudio.core.transforms.views.ViewPipeline`, the trainer's
own code path, at the training size: what you see is what the network will see.
"""

from __future__ import annotations

import dataclasses
import random
import threading
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QThreadPool, QTimer, Signal, Slot
from PySide6.QtWidgets import (
    QComboBox,
    QLabel,
    QPushButton,
    QScrollArea,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from sslstudio.config import AugmentConfig, RunConfig
from sslstudio.core.transforms.presets import DESCRIPTIONS, PRESETS, preset
from sslstudio.gui.config_model import OwnEdits, RunConfigModel
from sslstudio.gui.pages.augment.preview_grid import PreviewGrid
from sslstudio.gui.pages.augment.words import describe
from sslstudio.gui.qt_models import numpy_to_qimage
from sslstudio.gui.widgets.config_form import ConfigForm
from sslstudio.gui.widgets.panels import Card, Page, hbox, hint
from sslstudio.gui.widgets.words import AUGMENT_LABELS
from sslstudio.imaging import decode as imaging

ROWS = 4
VIEWS = 6
DEBOUNCE_MS = 150
CUSTOM = "custom"
SECTIONS = (
    ("Crop", ("crop_scale_min", "crop_scale_max", "crop_ratio_min", "crop_ratio_max")),
    ("Flips and rotations", ("hflip_p", "vflip_p", "rot90_p")),
    ("Colour", ("jitter_p", "brightness", "contrast", "saturation", "hue", "grey_p")),
    ("Blur", ("blur_p", "blur_sigma_min", "blur_sigma_max")),
    ("Stain (H&E)", ("hed_p", "hed_sigma")),
)
LABELS = AUGMENT_LABELS  # one vocabulary: the Runs page names these settings alike


def render_views(
    originals: list[np.ndarray],
    augment: AugmentConfig,
    size: int,
    views: int,
    seed: int,
    constraints: dict[str, float] | None = None,
) -> list[list[np.ndarray]]:
    """``views`` random views of each original, through the trainer's pipeline on the CPU.

    Returns one row per original: ``[view 1, ..., view n]``, each ``(size, size, 3)`` uint8.
    """
    import torch

    from sslstudio.core.transforms.views import ViewPipeline, ViewSpec

    batch = (
        torch.from_numpy(np.stack(originals)).permute(0, 3, 1, 2).contiguous()
    )  # (B, 3, S, S) uint8
    pipeline = ViewPipeline([ViewSpec(augment, size, count=views)], constraints=constraints)
    out = pipeline(
        batch, torch.Generator().manual_seed(seed), normalize=False
    )  # views x (B, 3, s, s)
    stacked = torch.stack(out, 1).clamp_(0, 1).mul_(255).round_().to(torch.uint8)  # (B, V, 3, s, s)
    arr = stacked.permute(0, 1, 3, 4, 2).contiguous().numpy()  # (B, V, s, s, 3)
    return [[arr[b, v] for v in range(arr.shape[1])] for b in range(arr.shape[0])]


class _PreviewSignals(QObject):
    ready = Signal(int, object, str)  # generation, rows of QImages (or None), error message


def preset_follows_size(old: RunConfig, new: RunConfig) -> RunConfig:
    """A model rule: a new image size brings the preset's variant for it (presets have a
    small-image one); custom settings stay as they are."""
    if (
        new.image_size != old.image_size
        and new.preset in PRESETS
        and (new.preset, new.augment) == (old.preset, old.augment)
    ):
        return dataclasses.replace(new, augment=preset(new.preset, new.image_size))
    return new


class AugmentPage(Page):
    """Edits the model's preset and augmentation; shows them at the model's image size.

    Signals: ``previewUpdated()`` when a preview was drawn."""

    EDITS = ("preset", "augment")

    previewUpdated = Signal()

    def __init__(self, model: RunConfigModel, parent: QWidget | None = None) -> None:
        super().__init__(
            "Augmentations",
            "Each image is altered at random, twice per step; the network learns to ignore what "
            "these changes vary. The preview shows what training will see: keep what matters in "
            "your images intact.",
            parent,
        )
        self.model = model
        self._edits = OwnEdits(model)
        self.image_size = model.config.image_size
        self.index: Any = None
        self.constraints: dict[str, float] = {}
        self.ready = False  # the core (torch) is imported; set by set_catalog_ready()
        self.previews_made = 0
        self._seed = 0
        self._generation = 0
        self._decoded: dict[tuple[str, int], np.ndarray] = {}
        self._decoded_lock = threading.Lock()
        self._closed = False
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._signals = _PreviewSignals(self)
        self._signals.ready.connect(self._on_preview)
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(DEBOUNCE_MS)
        self._debounce.timeout.connect(self.regenerate)

        splitter = QSplitter()
        splitter.setChildrenCollapsible(False)
        splitter.addWidget(self._build_controls())
        splitter.addWidget(self._build_preview())
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([340, 860])
        self.body.addWidget(splitter, 1)
        model.add_rule(preset_follows_size)
        model.changed.connect(self._on_model_changed)
        cfg = model.config
        if cfg.preset in PRESETS:  # the preset's values at this size, from the start
            model.update(augment=preset(cfg.preset, cfg.image_size))
        self._show(model.config)

    def _build_controls(self) -> QWidget:
        card = Card("Preset")
        card.setMinimumWidth(330)
        card.setMaximumWidth(440)
        self.preset_combo = QComboBox()
        self.preset_combo.setObjectName("preset")
        self.preset_combo.addItems([*PRESETS, CUSTOM])
        self.preset_combo.currentTextChanged.connect(self._on_preset_chosen)
        card.add(self.preset_combo)
        self.preset_description = hint("")
        card.add(self.preset_description)
        self.form = ConfigForm(AugmentConfig(), labels=LABELS, sections=SECTIONS)
        self.form.valueChanged.connect(self._on_form_changed)
        scroll = QScrollArea()
        scroll.setObjectName("formScroll")
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        body = QWidget()
        body.setObjectName("formScrollBody")
        lay = QVBoxLayout(body)
        lay.setContentsMargins(0, 0, 10, 0)
        lay.addWidget(self.form)
        lay.addStretch(1)
        scroll.setWidget(body)
        card.add(scroll, 1)
        return card

    def _build_preview(self) -> QWidget:
        card = Card()
        title = QLabel("Preview")
        title.setObjectName("sectionTitle")
        self.shuffle_button = QPushButton("Shuffle")
        self.shuffle_button.setToolTip("Other images, other random views")
        self.shuffle_button.clicked.connect(self.shuffle)
        card.layout_.addLayout(hbox(title, None, self.shuffle_button))
        self.preview_caption = hint("")
        card.add(self.preview_caption)
        self.preview = PreviewGrid()
        self.preview.set_message("Choose a folder of images to see a preview.")
        card.add(self.preview, 1)
        words = QLabel("What training will vary")
        words.setObjectName("formSection")
        card.add(words)
        self.description = QLabel("")
        self.description.setObjectName("augmentSummary")
        self.description.setWordWrap(True)
        card.add(self.description)
        return card

    # -- inputs from the other pages --------------------------------------------------------

    def set_index(self, index: Any) -> None:
        self.index = index
        self.schedule()

    def set_constraints(self, constraints: dict[str, float]) -> None:
        self.constraints = dict(constraints)
        self.schedule()

    def set_catalog_ready(self) -> None:
        self.ready = True
        self.schedule()

    # -- config -------------------------------------------------------------------------------

    def apply_preset(self, name: str) -> None:
        """Show preset ``name`` (its values at the training size, unless custom)."""
        self.preset_combo.blockSignals(True)
        self.preset_combo.setCurrentText(name)
        self.preset_combo.blockSignals(False)
        if name != CUSTOM:
            self.form.set_value(preset(name, self.image_size))
        self.preset_description.setText(
            DESCRIPTIONS.get(name, "Your own settings. Choose a preset to start over from it.")
        )

    def _show(self, cfg: RunConfig) -> None:
        self.apply_preset(cfg.preset if cfg.preset in (*PRESETS, CUSTOM) else CUSTOM)
        self.form.set_value(cfg.augment)

    def _on_model_changed(self, cfg: RunConfig, names: frozenset[str]) -> None:
        if not names & {"preset", "augment", "image_size"}:
            return
        self.image_size = cfg.image_size
        if self._edits.others(names) & {"preset", "augment"}:
            self._show(cfg)
        self.schedule()

    def _on_preset_chosen(self, name: str) -> None:
        self.apply_preset(name)
        self._edits.update(preset=name, augment=self.form.value())

    def _on_form_changed(self) -> None:
        if self.preset_combo.currentText() != CUSTOM:
            self.apply_preset(CUSTOM)
        self._edits.update(preset=CUSTOM, augment=self.form.value())

    # -- preview ------------------------------------------------------------------------------

    def shuffle(self) -> None:
        self._seed += 1
        self.regenerate()

    def schedule(self) -> None:
        """Regenerate after the controls have been still for 150 ms (a spin box held down)."""
        augment = dataclasses.replace(self.form.value(), **self.constraints)
        lines = describe(augment, self.image_size)
        if self.constraints:
            lines.append(
                "Fixed by the method: "
                + ", ".join(f"{k} = {v:g}" for k, v in self.constraints.items())
                + "."
            )
        self.description.setText("\n".join(f"•  {line}" for line in lines))
        self._debounce.start()

    def regenerate(self) -> None:
        self._debounce.stop()
        if self.index is None or not self.index.images:
            self.preview.set_message("Choose a folder of images to see a preview.")
            return
        if not self.ready:
            self.preview.set_message("Loading the training engine…")
            return
        self._generation += 1
        job = dict(
            generation=self._generation,
            paths=self._pick_images(),
            augment=self.form.value(),
            size=self.image_size,
            seed=self._seed,
            constraints=dict(self.constraints),
        )
        self._pool.clear()  # a queued, not yet started preview is already stale
        self._pool.start(lambda: self._render(job))
        self.preview_caption.setText(
            f"{ROWS} images × {VIEWS} random views at the training size ({self.image_size} px), "
            "enlarged."
        )

    def _pick_images(self) -> list[tuple[str, int]]:
        rng = random.Random(self._seed)
        images = self.index.images
        codes = self.index.table.label_codes()[:50_000]  # enough variety; all of 1M is not
        groups = [np.flatnonzero(codes == c) for c in np.unique(codes)]
        rng.shuffle(groups)
        picks = [
            int(rng.choice(groups[i % len(groups)])) for i in range(ROWS)
        ]  # spread over classes
        root = Path(self.index.root)
        # a big folder's sizes may be unread (0): the preview then decodes at the default size
        return [
            (str(root / images[i].path), min(images[i].width, images[i].height) or None)
            for i in picks
        ]

    def _render(self, job: dict[str, Any]) -> None:  # runs on the pool thread
        from sslstudio.core.transforms.views import default_cache_size

        rows, error = None, ""
        try:
            originals = []
            for path, native in job["paths"]:
                side = default_cache_size(job["size"], native)  # the trainer's cache resolution
                originals.append(self._decode(path, side))
            side = min(a.shape[0] for a in originals)
            originals = [a[:side, :side] for a in originals]
            views = render_views(
                originals, job["augment"], job["size"], VIEWS, job["seed"], job["constraints"]
            )
            rows = [
                [numpy_to_qimage(o)] + [numpy_to_qimage(v) for v in vs]
                for o, vs in zip(originals, views, strict=True)
            ]
        except Exception as exc:  # shown in the preview area, never a crash
            error = f"{type(exc).__name__}: {exc}"
        if not self._closed:
            self._signals.ready.emit(job["generation"], rows, error)

    def _decode(self, path: str, side: int) -> np.ndarray:
        key = (path, side)
        with self._decoded_lock:
            if key in self._decoded:
                return self._decoded[key]
        arr = imaging.decode_resized(path, side)
        with self._decoded_lock:
            if len(self._decoded) > 64:
                self._decoded.clear()
            self._decoded[key] = arr
        return arr

    @Slot(int, object, str)
    def _on_preview(self, generation: int, rows: Any, error: str) -> None:
        if generation != self._generation:
            return
        if rows is None:
            self.preview.set_message(f"No preview: {error}")
        else:
            self.preview.set_images(rows, ["Original"] + [f"View {i + 1}" for i in range(VIEWS)])
            self.previews_made += 1
        self.previewUpdated.emit()

    def shutdown(self) -> None:
        self._closed = True
        self._debounce.stop()
        self._pool.clear()
        self._pool.waitForDone()
