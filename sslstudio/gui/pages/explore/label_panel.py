"""Classes, the images labelled with them, and the classifier trained on them.

A view over :class:`ExploreSession`; the selection to label comes from the page (a grid, the
neighbour list or the map), through the ``selected`` callable.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QInputDialog,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from sslstudio.gui.widgets.panels import hbox


class LabelPanel(QWidget):
    """Signals: ``status(text)`` — what happened, for the page's status line."""

    status = Signal(str)

    def __init__(
        self, session, selected: Callable[[], list[int]], parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.session = session
        self._selected = selected
        self.class_list = QListWidget()
        self.class_list.setMaximumHeight(120)
        self.new_class_button = QPushButton("New class…")
        self.new_class_button.clicked.connect(self._new_class)
        self.assign_button = QPushButton("Label selected")
        self.assign_button.setToolTip("Give the selected images the class chosen in the list")
        self.assign_button.clicked.connect(self.assign_selected)
        self.unassign_button = QPushButton("Unlabel")
        self.unassign_button.setToolTip("Remove the labels of the selected images")
        self.unassign_button.clicked.connect(lambda: self.assign(None))
        self.import_button = QPushButton("Import…")
        self.import_button.setToolTip(
            "Labels from the folder's class subfolders or from a CSV (path,label)"
        )
        self.import_button.clicked.connect(self._import)
        self.kind_combo = QComboBox()
        self.kind_combo.addItems(["linear", "knn"])
        self.kind_combo.setToolTip(
            "linear: logistic regression on the features; knn: weighted vote of "
            "the 20 most similar labelled images"
        )
        self.train_button = QPushButton("Classify all")
        self.train_button.setObjectName("primary")
        self.train_button.setToolTip(
            "Train on the labelled images, predict every image, estimate the "
            "accuracy by cross-validation"
        )
        self.train_button.clicked.connect(self.train)
        self.export_button = QPushButton("Export CSV…")
        self.export_button.clicked.connect(self._export)
        self.auto_check = QCheckBox("Update as I label")
        self.auto_check.setChecked(True)
        self.auto_check.setToolTip(
            "Retrain and re-estimate the accuracy a moment after each change of labels"
        )
        self._auto = QTimer(self)  # labelling in quick succession retrains once
        self._auto.setSingleShot(True)
        self._auto.setInterval(400)
        self._auto.timeout.connect(self._auto_train)
        self.accuracy_label = QLabel("")
        self.accuracy_label.setObjectName("hint")
        self.accuracy_label.setWordWrap(True)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.class_list)
        # two buttons a row: the panel stays usable beside the image tabs at the window's minimum
        lay.addLayout(hbox(self.new_class_button, self.assign_button, self.unassign_button, None))
        lay.addLayout(hbox(self.import_button, self.export_button, None))
        lay.addLayout(hbox(self.kind_combo, self.train_button, self.auto_check, None))
        lay.addWidget(self.accuracy_label)
        session.labelsChanged.connect(self._on_labels)
        session.predictionsChanged.connect(self._on_predictions)
        session.loaded.connect(self._on_loaded)

    # -- session answers ----------------------------------------------------------------------

    @Slot()
    def _on_loaded(self) -> None:
        self.accuracy_label.setText("")
        self._on_labels()

    @Slot()
    def _on_labels(self) -> None:
        chosen = self.chosen_class()
        self.class_list.clear()
        for name, n in self.session.labels.counts().items():
            item = QListWidgetItem(f"{name}  ({n})")
            item.setData(Qt.ItemDataRole.UserRole, name)
            self.class_list.addItem(item)
            if name == chosen:
                self.class_list.setCurrentItem(item)
        if self.class_list.currentItem() is None and self.class_list.count():
            self.class_list.setCurrentRow(0)
        if self.auto_check.isChecked() and self.session.emb is not None:
            self._auto.start()

    def stop(self) -> None:
        self._auto.stop()

    def _auto_train(self) -> None:
        _, y = self.session.labelled_rows()
        if len(np.unique(y)) >= 2:
            self.train()

    @Slot()
    def _on_predictions(self) -> None:
        s = self.session
        rows, _ = s.labelled_rows()
        cv = (
            "n/a — label at least 2 images per class for an estimate"
            if s.cv_accuracy is None
            else f"{s.cv_accuracy:.1%}"
        )
        counts = np.bincount(s.predictions.label, minlength=len(s.predictions.classes))
        spread = ", ".join(f"{c}: {n}" for c, n in zip(s.predictions.classes, counts))
        self.accuracy_label.setText(
            f"{s.classifier_kind} classifier from {len(rows)} labels · "
            f"cross-validated accuracy {cv} · predicted {spread}"
        )

    # -- actions ------------------------------------------------------------------------------

    def chosen_class(self) -> str | None:
        item = self.class_list.currentItem()
        return item.data(Qt.ItemDataRole.UserRole) if item else None

    def add_class(self, name: str) -> None:
        self.session.add_class(name)
        for i in range(self.class_list.count()):
            if self.class_list.item(i).data(Qt.ItemDataRole.UserRole) == name:
                self.class_list.setCurrentRow(i)

    def _new_class(self) -> None:
        name, ok = QInputDialog.getText(self, "New class", "Class name:")
        if ok and name.strip():
            self.add_class(name.strip())

    def assign_selected(self) -> None:
        name = self.chosen_class()
        if name is None:
            self.status.emit("Make a class first (New class…), then label images with it.")
            return
        self.assign(name)

    def assign(self, name: str | None) -> None:
        rows = self._selected()
        if not rows:
            self.status.emit("Select images first (in a grid, the neighbours, or on the map).")
            return
        self.session.assign(rows, name)
        self.status.emit(f"{len(rows)} image(s) {f'labelled {name}' if name else 'unlabelled'}")

    def _import(self) -> None:
        s = self.session
        choices = (["From the folder's class subfolders"] if s.emb.labels is not None else []) + [
            "From a CSV file…"
        ]
        choice, ok = QInputDialog.getItem(self, "Import labels", "Take labels", choices, 0, False)
        if not ok:
            return
        if choice.startswith("From the folder"):
            s.import_subfolders()
            return
        path, _ = QFileDialog.getOpenFileName(
            self, "Labels CSV (path,label)", "", "CSV (*.csv);;All files (*)"
        )
        if path:
            unmatched = s.import_csv(path)
            if unmatched:
                self.status.emit(
                    f"{len(unmatched)} CSV row(s) matched no image, e.g. {unmatched[0]}"
                )

    def train(self) -> None:
        _, y = self.session.labelled_rows()
        if len(np.unique(y)) < 2:
            self.status.emit("Label images of at least two classes first.")
            return
        self.session.train_classifier(self.kind_combo.currentText())

    def _export(self) -> None:
        if self.session.predictions is None:
            self.status.emit("Classify first: there are no predictions to export yet.")
            return
        path, _ = QFileDialog.getSaveFileName(
            self, "Save predictions", "predictions.csv", "CSV (*.csv)"
        )
        if path:
            self.session.export_predictions(path)
            self.status.emit(f"Predictions written to {path}")
