"""The Data page's "Whole-slide images" card: how slides become tiles, applied by a rescan."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QDoubleSpinBox, QFormLayout, QPushButton, QSpinBox, QWidget

from sslstudio.gui.widgets.panels import Card, hbox, hint
from sslstudio.imaging.slides import SlideOptions


class TilingCard(Card):
    """Tile size and resolution; ``applied(SlideOptions)`` when the user asks for a new tiling."""

    applied = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Whole-slide images", parent)
        self.options = SlideOptions()
        form = QFormLayout()
        self.size_spin = QSpinBox()
        self.size_spin.setRange(16, 4096)
        self.size_spin.setSuffix(" px")
        self.size_spin.setToolTip("Side of each tile at the chosen resolution")
        self.mpp_spin = QDoubleSpinBox()
        self.mpp_spin.setRange(0.0, 100.0)
        self.mpp_spin.setDecimals(2)
        self.mpp_spin.setSingleStep(0.25)
        self.mpp_spin.setSuffix(" µm/px")
        self.mpp_spin.setSpecialValueText("full resolution")
        self.mpp_spin.setToolTip(
            "0.25 is about 40x, 0.5 about 20x, 1.0 about 10x; 0: the slide's own resolution"
        )
        self.tissue_spin = QSpinBox()
        self.tissue_spin.setRange(5, 100)
        self.tissue_spin.setSingleStep(5)
        self.tissue_spin.setSuffix(" % tissue")
        self.tissue_spin.setToolTip(
            "Keep a tile when at least this share of it is tissue (not glass): lower keeps "
            "the edges of the tissue, higher only its middle"
        )
        form.addRow("Tile size", self.size_spin)
        form.addRow("Resolution", self.mpp_spin)
        form.addRow("Keep tiles of at least", self.tissue_spin)
        self.layout_.addLayout(form)
        self.caption = hint("")
        self.add(self.caption)
        self.apply_button = QPushButton("Tile again")
        self.apply_button.setToolTip(
            "Rescan the slides with this tile size, resolution and tissue share"
        )
        self.apply_button.clicked.connect(lambda: self.applied.emit(self.chosen()))
        self.layout_.addLayout(hbox(None, self.apply_button))
        self.show_options(self.options)

    def chosen(self) -> SlideOptions:
        return SlideOptions(
            self.size_spin.value(), self.mpp_spin.value() or None, self.tissue_spin.value() / 100
        )

    def show_options(self, options: SlideOptions) -> None:
        self.options = options
        self.size_spin.setValue(options.tile_px)
        self.mpp_spin.setValue(options.mpp or 0.0)
        self.tissue_spin.setValue(round(options.tissue_min * 100))

    def show_count(self, tiles: int, slides: int) -> None:
        self.caption.setText(
            f"{tiles:,} tissue tiles from {slides:,} slide{'s' if slides != 1 else ''}: squares of "
            f"{self.options.tile_px} px at {self.options.mpp or 'full'}"
            f"{' µm/px' if self.options.mpp else ' resolution'} that are at least "
            f"{self.options.tissue_min:.0%} tissue."
        )
