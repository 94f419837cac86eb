"""The Data page's "Check on new slides" card: a labelled folder the run is measured on.

Nothing inside a run can tell how its features do on the next slides; a few labelled images
from them can (``core.train.check``). The card chooses that folder (``check_folder``) and says
what the check needs: class subfolders here and there, with shared names.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFileDialog, QLabel, QPushButton, QWidget

from sslstudio.gui.widgets.panels import Card, hbox, hint

EXPLAINED = (
    "Optional: labelled images from other slides (a subfolder per class, named as here; 20 or "
    "more per class), never trained on. Each check of the run then measures whether its "
    "features beat an untrained network on them, and picks the checkpoint that does best there."
)
UNSET = "Optional: labelled images from other slides, to measure the run on (hover for more)"
NEEDS_CLASSES = (
    "Needs class subfolders in this folder too: its labelled images answer the check images."
)


class CheckCard(Card):
    """``chosen(str)`` with the folder picked, or "" when cleared."""

    chosen = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("", parent)
        self.folder = ""
        self.classes: list[str] = []
        self.setToolTip(EXPLAINED)
        title = QLabel("Check on new slides")
        title.setObjectName("sectionTitle")
        self.choose_button = QPushButton("Choose…")
        self.choose_button.setToolTip(EXPLAINED)
        self.choose_button.clicked.connect(self._choose)
        self.clear_button = QPushButton("Clear")
        self.clear_button.setToolTip("Train without a check folder")
        self.clear_button.clicked.connect(lambda: self.chosen.emit(""))
        self.layout_.addLayout(hbox(title, None, self.choose_button))
        self.folder_label = hint(UNSET)
        self.folder_label.setObjectName("checkFolder")
        row = hbox(self.folder_label, self.clear_button)
        row.setStretch(0, 1)  # the path takes the room, the button its own width
        self.layout_.addLayout(row)
        self.status = hint("")
        self.add(self.status)
        self.show_folder("")

    def _choose(self) -> None:
        start = str(Path(self.folder).parent) if self.folder else str(Path.home())
        folder = QFileDialog.getExistingDirectory(self, "Choose labelled images to check on", start)
        if folder:
            self.chosen.emit(folder)

    def show_folder(self, folder: str) -> None:
        """Show the model's check folder and what the check needs now."""
        self.folder = folder
        self.folder_label.setText(folder or UNSET)
        self.folder_label.setToolTip(folder)
        self.clear_button.setVisible(bool(folder))
        self._explain()

    def show_classes(self, classes: list[str]) -> None:
        """The training folder's classes (none: the check cannot run)."""
        self.classes = list(classes)
        self._explain()

    def _explain(self) -> None:
        self._say_status()
        self.status.setVisible(bool(self.status.text()))

    def _say_status(self) -> None:
        if not self.classes:
            self.status.setText(NEEDS_CLASSES if self.folder else "")
            return
        if not self.folder:
            self.status.setText("")
            return
        try:
            names = sorted(p.name for p in Path(self.folder).iterdir() if p.is_dir())
        except OSError as exc:
            self.status.setText(f"Cannot read the check folder: {exc.strerror or exc}")
            return
        shared = [c for c in names if c in self.classes]
        if len(shared) < 2:
            some = "None" if not shared else "Only 1"
            self.status.setText(
                f"{some} of its subfolders is a class here ({', '.join(self.classes)}): the "
                "check needs at least 2."
            )
            return
        extra = [c for c in names if c not in self.classes]
        left = f"; {', '.join(extra)} left out (not a class here)" if extra else ""
        self.status.setText(f"Checks {', '.join(shared)}{left}.")
