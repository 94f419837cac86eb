"""``sslstudio-tool view``: one window with the query image and its nearest bundled images.

PySide6 is imported only inside these functions: the tool installs and runs without it, and
says so plainly when someone asks for the window. Neighbours are read from the bundle's image
root (or ``--images-root``), display only; a path that is missing or would leave that root
shows as a grey tile with its name.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from sslstudio.tool.inference import Model, ToolError
from sslstudio.tool.search import NeighbourIndex
from sslstudio.tool.sources import BundleError, check_relative

THUMB = 160
COLUMNS = 5


def neighbours(
    model: Model, index: NeighbourIndex, image: str, k: int
) -> tuple[np.ndarray, list[tuple[int, str, float]]]:
    """(query pixels, [(index, bundled path, score)]) best first."""
    pixels = model.pixels(image)
    scores, idx = index.search(model.embed_pixels(pixels[None]), k)
    paths = model.bundle.paths
    return pixels, [(int(i), paths[i], float(s)) for s, i in zip(scores[0], idx[0])]


def thumbnail(root: str | None, rel: str) -> np.ndarray | None:
    """Pixels of a bundled image for display, or None when it cannot be shown."""
    if root is None:
        return None
    try:
        check_relative(rel, "items.json")
    except BundleError:
        return None  # a path leaving the root is not opened, even for a picture
    from sslstudio.imaging.decode import DecodeError, decode_resized

    try:
        return decode_resized(os.path.join(root, rel), THUMB, square=True)
    except (DecodeError, OSError):
        return None


def build_window(
    query: np.ndarray, query_name: str, hits: list[tuple[int, str, float]], root: str | None
) -> Any:
    """The window (not yet shown); a QApplication must exist."""
    from PySide6 import QtCore, QtGui, QtWidgets

    def tile(pixels: np.ndarray | None, caption: str, side: int) -> QtWidgets.QWidget:
        box = QtWidgets.QWidget()
        lay = QtWidgets.QVBoxLayout(box)
        pic = QtWidgets.QLabel()
        pic.setFixedSize(side, side)
        pic.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        if pixels is None:
            pic.setStyleSheet("background: #888; color: white")
            pic.setText("not found")
        else:
            rgb = np.ascontiguousarray(pixels)
            h, w = rgb.shape[:2]
            fmt = QtGui.QImage.Format.Format_RGB888
            img = QtGui.QImage(rgb.data, w, h, 3 * w, fmt).copy()  # copy: own the pixels
            pic.setPixmap(
                QtGui.QPixmap.fromImage(img).scaled(
                    side,
                    side,
                    QtCore.Qt.AspectRatioMode.KeepAspectRatio,
                    QtCore.Qt.TransformationMode.SmoothTransformation,
                )
            )
        text = QtWidgets.QLabel(caption)
        text.setObjectName("caption")
        text.setWordWrap(True)
        text.setMaximumWidth(side)
        lay.addWidget(pic)
        lay.addWidget(text)
        return box

    win = QtWidgets.QWidget()
    win.setWindowTitle(f"sslstudio-tool: neighbours of {query_name}")
    outer = QtWidgets.QHBoxLayout(win)
    outer.addWidget(tile(query, f"query\n{query_name}", int(THUMB * 1.5)), 0)
    grid_host = QtWidgets.QWidget()
    grid = QtWidgets.QGridLayout(grid_host)
    for n, (_, rel, score) in enumerate(hits):
        cap = f"#{n + 1}  {score:.3f}\n{Path(rel).name}"
        grid.addWidget(tile(thumbnail(root, rel), cap, THUMB), n // COLUMNS, n % COLUMNS)
    scroll = QtWidgets.QScrollArea()
    scroll.setWidgetResizable(True)
    scroll.setWidget(grid_host)
    outer.addWidget(scroll, 1)
    win.resize(int(THUMB * 1.5) + COLUMNS * (THUMB + 24) + 60, 2 * (THUMB + 60) + 40)
    return win


def show(model: Model, index: NeighbourIndex, image: str, k: int, images_root: str | None) -> int:
    """Open the window and run until it is closed; ToolError without PySide6."""
    try:
        from PySide6 import QtWidgets
    except ImportError as e:
        raise ToolError(
            "the viewer needs PySide6 (pip install PySide6-Essentials); "
            "`sslstudio-tool query` prints the same neighbours as text"
        ) from e
    _require_display()
    pixels, hits = neighbours(model, index, image, k)
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    root = images_root or model.bundle.items_root
    win = build_window(pixels, Path(image).name, hits, root)
    win.show()
    return int(app.exec())


def _require_display() -> None:
    """Qt aborts the process (exit 134) when its platform has no display: say so first."""
    if not sys.platform.startswith("linux"):
        return
    platform = os.environ.get("QT_QPA_PLATFORM", "").split(":")[0]
    needs = {"": ("DISPLAY", "WAYLAND_DISPLAY"), "xcb": ("DISPLAY",)}
    needs["wayland"] = ("WAYLAND_DISPLAY",)
    if platform in needs and not any(os.environ.get(v) for v in needs[platform]):
        raise ToolError(
            "no display to open the viewer on (DISPLAY is not set): run it in a desktop session, "
            "or use `sslstudio-tool query`, which prints the same neighbours as text"
        )
