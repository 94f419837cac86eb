"""The neighbour browser: a query image, its k nearest images with their similarity, and a trail
of earlier queries (back / forward) as the user steps to neighbours of neighbours.

A view only: the page asks the session for neighbours and calls :meth:`show`; double-click a
result and ``queryRequested(row)`` asks for that image's neighbours.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QUrl, Signal, Slot
from PySide6.QtGui import QDesktopServices, QDragEnterEvent, QDropEvent, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from sslstudio.gui.pages.explore.models import ROW_ROLE, ImageRowsModel
from sslstudio.gui.qt_models import ThumbnailCache, numpy_to_qimage
from sslstudio.gui.widgets.panels import hbox, hint
from sslstudio.gui.widgets.thumbnail_grid import ThumbnailGrid
from sslstudio.imaging import decode as imaging
from sslstudio.imaging import slides

GROUP_RULES = {
    "Keep all": "",
    "Leave out the same folder or slide": "folder",
    "Leave out a name pattern…": "pattern",
}
QUERY_SIDE = 132


class NeighbourBrowser(QWidget):
    """Signals: ``queryRequested(row)``, ``fileQueryRequested(path)``, ``settingsChanged()`` (k or
    grouping changed: the page asks again)."""

    queryRequested = Signal(int)
    fileQueryRequested = Signal(str)
    settingsChanged = Signal()

    def __init__(self, cache: ThumbnailCache, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAcceptDrops(True)
        self._trail: list[tuple[int, str]] = []  # (row or -1, path)
        self._pos = -1
        self.query_path = ""

        self.query_image = QLabel()
        self.query_image.setFixedSize(QUERY_SIDE, QUERY_SIDE)
        self.query_image.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.query_image.setObjectName("queryImage")
        self.query_caption = QLabel(
            "Click an image to see its nearest neighbours, or drop an image file here."
        )
        self.query_caption.setWordWrap(True)
        self.query_caption.setObjectName("hint")
        self.back_button = QPushButton("‹ Back")
        self.forward_button = QPushButton("Forward ›")
        self.open_button = QPushButton("Open full size")
        self.file_button = QPushButton("Query with a file…")
        self.back_button.clicked.connect(lambda: self._step(-1))
        self.forward_button.clicked.connect(lambda: self._step(1))
        self.open_button.clicked.connect(self._open_full)
        self.file_button.clicked.connect(self._choose_file)

        self.k_spin = QSpinBox()
        self.k_spin.setRange(1, 500)
        self.k_spin.setValue(24)
        self.k_spin.setPrefix("k = ")
        self.k_spin.valueChanged.connect(self.settingsChanged)
        self.group_combo = QComboBox()
        self.group_combo.addItems(list(GROUP_RULES))
        self.group_combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.group_combo.setMinimumContentsLength(14)  # the longest choice elides, not the page
        self.group_combo.setToolTip(
            "Tiles cut from one slide look alike: leave out the query's own slide (its folder, or "
            "the part of the file name a pattern picks, e.g. ^(\\w+)_ for 'SLIDE12_x3_y4.png')."
        )
        self.pattern_edit = QLineEdit()
        self.pattern_edit.setPlaceholderText(r"regex on the file name, e.g. ^(\w+)_")
        self.pattern_edit.setVisible(False)
        self.group_combo.currentTextChanged.connect(self._on_group_choice)
        self.pattern_edit.editingFinished.connect(self.settingsChanged)

        self.model = ImageRowsModel(cache, self)
        self.grid = ThumbnailGrid(self.model, icon_size=88)  # type: ignore[arg-type]
        self.grid.setObjectName("neighbourGrid")
        self.grid.doubleClicked.connect(
            lambda idx: self.queryRequested.emit(int(idx.data(ROW_ROLE)))
        )

        top = QWidget()
        side = QVBoxLayout()
        side.setSpacing(6)
        side.addWidget(self.query_caption)
        side.addLayout(hbox(self.back_button, self.forward_button, None))
        side.addLayout(hbox(self.open_button, None))
        side.addLayout(hbox(self.file_button, None))
        row = hbox(self.query_image, spacing=12)
        row.addLayout(side, 1)
        top.setLayout(row)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(top)
        lay.addLayout(hbox(self.k_spin, self.group_combo, self.pattern_edit, None))
        lay.addWidget(self.grid, 1)
        lay.addWidget(hint("Double-click a neighbour to see its own neighbours."))
        self._update_buttons()

    # -- state --------------------------------------------------------------------------------

    @property
    def k(self) -> int:
        return self.k_spin.value()

    def group_rule(self) -> str:
        rule = GROUP_RULES[self.group_combo.currentText()]
        return self.pattern_edit.text().strip() if rule == "pattern" else rule

    def current(self) -> tuple[int, str] | None:
        return self._trail[self._pos] if 0 <= self._pos < len(self._trail) else None

    def push(self, row: int, path: str) -> None:
        """A new query (a click, a double-click, a file): forward history is dropped."""
        if self.current() == (row, path):
            return
        del self._trail[self._pos + 1 :]
        self._trail.append((row, path))
        self._pos = len(self._trail) - 1
        self._update_buttons()

    def show_results(
        self,
        row: int,
        path: str,
        caption: str,
        hits: list[tuple[int, float]],
        closeness: Any = None,
    ) -> None:
        """The query on its own beside the list (not as its first neighbour); ``closeness``:
        per hit, the share of the folder less similar to the query (shown and coloured)."""
        self.query_path = path
        self.query_caption.setText(caption)
        try:
            pm = QPixmap.fromImage(numpy_to_qimage(imaging.decode_resized(path, QUERY_SIDE)))
        except (imaging.DecodeError, OSError, ValueError):
            pm = QPixmap()
        self.query_image.setPixmap(pm)
        self.model.set_rows([r for r, _ in hits], [s for _, s in hits], closeness)
        self.grid.scrollToTop()
        self._update_buttons()

    def clear(self) -> None:
        self._trail, self._pos, self.query_path = [], -1, ""
        self.query_image.clear()
        self.model.set_rows([])
        self._update_buttons()

    # -- slots --------------------------------------------------------------------------------

    def _step(self, delta: int) -> None:
        pos = self._pos + delta
        if 0 <= pos < len(self._trail):
            self._pos = pos
            row, path = self._trail[pos]
            if row >= 0:
                self.queryRequested.emit(row)
            else:
                self.fileQueryRequested.emit(path)
            self._update_buttons()

    def _update_buttons(self) -> None:
        self.back_button.setEnabled(self._pos > 0)
        self.forward_button.setEnabled(0 <= self._pos < len(self._trail) - 1)
        self.open_button.setEnabled(bool(self.query_path))

    @Slot(str)
    def _on_group_choice(self, text: str) -> None:
        self.pattern_edit.setVisible(GROUP_RULES[text] == "pattern")
        self.settingsChanged.emit()

    def _open_full(self) -> None:
        if self.query_path:
            QDesktopServices.openUrl(QUrl.fromLocalFile(full_size_file(self.query_path)))

    def _choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self,
            "Find images like…",
            "",
            "Images (*.png *.jpg *.jpeg *.tif *.tiff *.bmp *.webp *.gif);;All files (*)",
        )
        if path:
            self.fileQueryRequested.emit(path)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 (Qt override)
        urls = event.mimeData().urls()
        if urls and urls[0].isLocalFile() and Path(urls[0].toLocalFile()).is_file():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        urls = event.mimeData().urls()
        if urls and urls[0].isLocalFile():
            event.acceptProposedAction()
            self.fileQueryRequested.emit(urls[0].toLocalFile())


def full_size_file(path: str) -> str:
    """A file the system viewer can open: the image itself, or a whole-slide tile written to a
    temporary PNG (a tile address names no file)."""
    if Path(path).exists() or slides.parse_address(path) is None:
        return path
    import hashlib
    import tempfile

    from PIL import Image

    name = hashlib.sha256(path.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    target = Path(tempfile.gettempdir()) / f"sslstudio-tile-{name}.png"
    try:
        Image.fromarray(imaging.decode(path)).save(target)
    except (imaging.DecodeError, OSError):
        return path
    return str(target)
