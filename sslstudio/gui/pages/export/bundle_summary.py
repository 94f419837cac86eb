"""What an export wrote: the bundle's files and sizes, what the model can do, a way to open it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QUrl, Slot
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QHeaderView, QLabel, QPushButton, QTableWidget, QTableWidgetItem

from sslstudio.gui.widgets.panels import Card, hbox, hint


class BundleSummary(Card):
    """A view over one bundle's manifest (``show_bundle``); empty until the first export."""

    def __init__(self) -> None:
        super().__init__()
        self.bundle: Path | None = None
        self.title = QLabel("Result")
        self.title.setObjectName("sectionTitle")
        self.open_button = QPushButton("Open folder")
        self.open_button.setToolTip("Show the bundle in the file manager")
        self.open_button.setEnabled(False)
        self.open_button.clicked.connect(self.open_bundle)
        self.layout_.addLayout(hbox(self.title, None, self.open_button))
        self.files = QTableWidget(0, 2)
        self.files.setObjectName("exportFiles")
        self.files.setHorizontalHeaderLabels(["File", "Size"])
        self.files.verticalHeader().setVisible(False)
        self.files.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        header = self.files.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        self.add(self.files, 1)
        self.text = hint("Nothing exported yet in this session.")
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.add(self.text)

    def show_bundle(self, path: Path, manifest: dict[str, Any]) -> None:
        from sslstudio.core.export.bundle import describe_bundle

        self.bundle = Path(path)
        files = sorted(manifest["files"].items())
        own = self.bundle / "manifest.json"  # not in its own list; absent for a zip
        rows = [("manifest.json", size_text(own.stat().st_size) if own.is_file() else "")]
        rows += [(name, size_text(info["bytes"])) for name, info in files]
        self.files.setRowCount(len(rows))
        for i, (name, size) in enumerate(rows):
            self.files.setItem(i, 0, QTableWidgetItem(name))
            item = QTableWidgetItem(size)
            item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.files.setItem(i, 1, item)
        total = sum(info["bytes"] for _, info in files)
        self.title.setText(f"Result: {self.bundle.name} ({size_text(total)})")
        self.text.setText("\n".join(describe_bundle(manifest)[len(files) :]))  # files are above
        self.open_button.setEnabled(True)

    @Slot()
    def open_bundle(self) -> None:
        if self.bundle is not None:
            target = self.bundle if self.bundle.is_dir() else self.bundle.parent
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(target)))


def size_text(n: float) -> str:
    for unit in ("bytes", "KB", "MB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"
