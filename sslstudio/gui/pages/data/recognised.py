"""The line that says what the images look like, and the augmentation preset chosen for them."""

from __future__ import annotations

from html import escape

from PySide6.QtWidgets import QLabel, QWidget

from sslstudio.core.transforms.recognise import Recognition

KINDS = {
    "histopathology": "stained tissue (H&E)",
    "microscopy": "fluorescence microscopy",
    "greyscale": "greyscale images",
    "natural": "everyday photos",
}


class RecognisedLine(QLabel):
    """Hidden until a folder of images has been recognised; kept true to the preset in use."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("recognised")
        self.setWordWrap(True)
        self.found: Recognition | None = None
        self.size_line = ""
        self.setVisible(False)

    def show_found(self, found: Recognition | None, preset_in_use: str, size: str = "") -> None:
        """``size``: why the image size was chosen with it (empty: the size was not chosen)."""
        self.found = found
        self.size_line = size
        self.show_preset(preset_in_use)

    def show_preset(self, preset_in_use: str) -> None:
        found = self.found
        if found is None:
            self.setText("")
            self.setVisible(False)
            return
        text = (
            f"These look like <b>{escape(KINDS.get(found.kind, found.kind))}</b>: "
            f"{escape(found.reason)} "
            f"Augmentation preset: <b>{found.preset}</b>"
        )
        if preset_in_use != found.preset:
            text += f" suggested; <b>{preset_in_use}</b> in use (Augment page)."
        else:
            text += " (change it on the Augment page)."
        if self.size_line:
            text += f" Image size: {escape(self.size_line)} (change it on the Method page)."
        self.setText(text)
        self.setToolTip(
            "Recognised from the colours of 32 images spread across the folder. The preset sets "
            "the augmentations: the random changes that teach the model what does not matter."
        )
        self.setVisible(True)
