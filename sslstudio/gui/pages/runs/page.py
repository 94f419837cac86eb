"""Step 5, Runs: the history of runs, their settings and curves; resume, compare, open, delete.

A view over the runs folder (read off the GUI thread by :mod:`sslstudio.gui.run.history`) and
the :class:`RunController` (which run is training now). Selecting one run shows its settings
and curves; selecting two to four overlays their curves and marks the settings that differ.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QItemSelection,
    QItemSelectionModel,
    QSortFilterProxyModel,
    Qt,
    QTimer,
    QUrl,
    Signal,
    Slot,
)
from PySide6.QtGui import QAction, QDesktopServices, QKeySequence, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QMessageBox,
    QPushButton,
    QSplitter,
    QTableView,
    QWidget,
)

from sslstudio.core.events import RunStarted
from sslstudio.gui import theme
from sslstudio.gui.pages.runs.run_details import RunDetailsView
from sslstudio.gui.qt_models import RunTableModel
from sslstudio.gui.run.controller import RunController
from sslstudio.gui.run.history import RUNNING, RunDetails, owned_paths
from sslstudio.gui.run.worker import FunctionWorker, ThreadJob
from sslstudio.gui.settings import Settings
from sslstudio.gui.widgets.panels import Card, Page, hbox, hint, with_shortcut
from sslstudio.paths import runs_dir

MAX_COMPARE = 4
LIVE_REFRESH_MS = 5000  # metrics logs are read incrementally, so this costs little


class RunsPage(Page):
    """Signals: ``resumeRequested(run_dir)``: the window loads the run's config and continues it."""

    resumeRequested = Signal(str)

    def __init__(
        self, controller: RunController, settings: Settings, parent: QWidget | None = None
    ) -> None:
        super().__init__(
            "Runs",
            "Every training run, newest first. Select one to see its settings and curves, two or "
            "more to compare them; a stopped run resumes from its last checkpoint.",
            parent,
        )
        self.controller = controller
        self.settings = settings
        self._details: dict[str, RunDetails] = {}
        self._pending: set[tuple[str, int]] = set()  # (path, generation) of details being read
        self._jobs: list[ThreadJob] = []
        self._generation = 0
        self._refreshed_at = 0.0
        self._select_after: str | None = None
        self.listing = False  # a listing is on its way (tests wait on it)
        self.body.addLayout(self._build_buttons())
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.setChildrenCollapsible(False)
        splitter.addWidget(self._build_table())
        self.details = RunDetailsView()
        self.settings_tree = self.details.settings_tree
        splitter.addWidget(self.details)
        splitter.setStretchFactor(0, 2)
        splitter.setStretchFactor(1, 3)
        splitter.setSizes([180, 460])
        self.body.addWidget(splitter, 1)
        self._set_tab_order()

        self._live = QTimer(self)  # while a run trains and the page is on screen, its row keeps up
        self._live.setInterval(LIVE_REFRESH_MS)
        self._live.timeout.connect(self._on_live_tick)
        self._live.start()
        controller.runEnded.connect(lambda _outcome: self.refresh())
        controller.event.connect(self._on_run_event)
        controller.stateChanged.connect(lambda _s: self._update_buttons())
        self._update_buttons()

    # -- construction ------------------------------------------------------------------------

    def _build_buttons(self) -> QHBoxLayout:
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.setToolTip(with_shortcut("Read the runs folder again", "F5"))
        self.refresh_button.clicked.connect(self.refresh)
        self.open_button = QPushButton("Open run…")
        self.open_button.setToolTip(
            with_shortcut("Add a run folder from elsewhere to the list", "Ctrl+Shift+O")
        )
        self.open_button.clicked.connect(self.choose_run)
        self.resume_button = QPushButton("Resume")
        self.resume_button.setObjectName("primary")
        self.resume_button.setToolTip(
            "Load this run's settings and continue it from its last checkpoint"
        )
        self.resume_button.clicked.connect(self._on_resume)
        self.folder_button = QPushButton("Open folder")
        self.folder_button.setToolTip(
            "Show the run's folder (config, metrics, checkpoints) in the file manager"
        )
        self.folder_button.clicked.connect(self.open_selected_folder)
        self.delete_button = QPushButton("Delete…")
        self.delete_button.setObjectName("danger")
        self.delete_button.setToolTip(
            with_shortcut("Delete the selected runs and their checkpoints", "Del")
        )
        self.delete_button.clicked.connect(self.delete_selected)
        return hbox(
            self.refresh_button,
            self.open_button,
            None,
            self.resume_button,
            self.folder_button,
            self.delete_button,
        )

    def _build_table(self) -> Card:
        """The runs as a sortable table, with Delete on the keyboard and an empty state."""
        self.model = RunTableModel(self)
        self.model.state_colors = dict(theme.current().tokens.get("run_states", {}))
        theme.changes().changed.connect(self._restyle)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(RunTableModel.SORT_ROLE)
        self.table = QTableView()
        self.table.setObjectName("runs")
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(0, Qt.SortOrder.DescendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.verticalHeader().setVisible(False)
        self.table.setWordWrap(False)
        self.table.setAlternatingRowColors(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.table.selectionModel().selectionChanged.connect(self._on_selection)
        self.delete_action = QAction("Delete…", self.table)
        self.delete_action.setShortcut(QKeySequence(QKeySequence.StandardKey.Delete))
        self.delete_action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.delete_action.triggered.connect(self.delete_selected)
        self.table.addAction(self.delete_action)
        self.table.doubleClicked.connect(lambda _i: self.open_selected_folder())
        self.empty_label = hint(
            "No runs yet. Runs started on the Train page appear here; "
            "File ▸ Open run… adds a run folder from elsewhere."
        )
        table_box = Card(margins=10)
        table_box.add(self.table, 1)
        table_box.add(self.empty_label)
        return table_box

    def _set_tab_order(self) -> None:
        QWidget.setTabOrder(self.refresh_button, self.open_button)
        QWidget.setTabOrder(self.open_button, self.table)
        for a, b in (
            (self.table, self.resume_button),
            (self.resume_button, self.folder_button),
            (self.folder_button, self.delete_button),
            (self.delete_button, self.settings_tree),
        ):
            QWidget.setTabOrder(a, b)

    # -- listing ----------------------------------------------------------------------------

    def _restyle(self, t: object) -> None:
        self.model.state_colors = dict(theme.current().tokens.get("run_states", {}))
        self.table.viewport().update()

    def extra_folders(self) -> tuple[str, ...]:
        return tuple(f for f in self.settings.get("opened_runs", []) if isinstance(f, str))

    def _owned(self) -> tuple[str, ...]:
        return owned_paths(self.controller.run_dir) if self.controller.is_running() else ()

    @Slot()
    def refresh(self) -> None:
        """Read the runs folder again, in the background; the selection is kept."""
        from sslstudio.gui.run.history import list_runs

        self._generation += 1
        self._refreshed_at = time.monotonic()
        self.listing = True
        root, extra, owned = runs_dir(), self.extra_folders(), self._owned()
        self._start(lambda: list_runs(root, extra, owned), ("list", self._generation))

    def _start(self, fn: Any, tag: tuple[Any, ...]) -> None:
        worker = FunctionWorker(fn, tag)
        worker.done.connect(self._on_done)
        worker.failed.connect(self._on_failed)
        job = ThreadJob(worker, "sslstudio-runs", self)
        job.ended.connect(self._on_job_ended)
        self._jobs.append(job)

    @Slot(object, object)
    def _on_done(self, tag: tuple[Any, ...], result: Any) -> None:
        kind = tag[0]
        if kind == "list" and tag[1] == self._generation:
            self._show_runs(result)
        elif kind == "details":
            self._pending.discard((tag[1], tag[2]))
            if tag[2] != self._generation:
                return  # read before the last refresh
            self._details[tag[1]] = result
            if tag[1] in self.selected_paths():
                self._show_details()
        elif kind == "delete":
            failures = [f"{Path(p).name}: {msg}" for p, msg in result]
            if failures:
                self.error_box = QMessageBox(
                    QMessageBox.Icon.Warning,
                    "Some runs were not deleted",
                    "\n".join(failures),
                    QMessageBox.StandardButton.Ok,
                    self,
                )
                self.error_box.open()
            self.refresh()

    @Slot(object, str)
    def _on_failed(self, tag: tuple[Any, ...], message: str) -> None:
        if tag[0] == "list" and tag[1] == self._generation:
            self.listing = False
            self.table.setVisible(False)
            self.empty_label.setText(f"Could not read the runs folder {runs_dir()}: {message}")
            self.empty_label.setVisible(True)
        elif tag[0] == "details":
            self._pending.discard((tag[1], tag[2]))
            if tag[1] in self.selected_paths():
                self.details.clear(f"Could not read {tag[1]}: {message}")

    @Slot()
    def _on_job_ended(self) -> None:
        self._jobs = [j for j in self._jobs if not j.done]

    def _show_runs(self, runs: list[Any]) -> None:
        keep = set(self.selected_paths())
        if self._select_after:
            keep = {str(Path(self._select_after).resolve())}
            self._select_after = None
        fresh = {
            r.path: r for r in runs
        }  # details of runs that changed (grown, resumed) are read again
        self._details = {p: d for p, d in self._details.items() if fresh.get(p) == d.summary}
        self.model.set_runs(runs)  # the view's selection is cleared by the reset
        self.empty_label.setVisible(not runs)
        self.table.setVisible(bool(runs))
        self.listing = False
        self.select_paths(list(keep))

    # -- selection ----------------------------------------------------------------------------

    def selected_runs(self) -> list[Any]:
        rows = sorted(
            {self.proxy.mapToSource(i).row() for i in self.table.selectionModel().selectedRows()}
        )
        return [self.model.run(r) for r in rows]

    def selected_paths(self) -> list[str]:
        return [r.path for r in self.selected_runs()]

    def select_paths(self, paths: list[str]) -> None:
        """Select the rows of these run folders (tests, Open run…)."""
        want = {str(Path(p).resolve()) for p in paths}
        chosen = QItemSelection()
        last = self.proxy.columnCount() - 1
        for row in range(self.proxy.rowCount()):
            run = self.model.run(self.proxy.mapToSource(self.proxy.index(row, 0)).row())
            if str(Path(run.path).resolve()) in want:
                chosen.select(self.proxy.index(row, 0), self.proxy.index(row, last))
        flags = (
            QItemSelectionModel.SelectionFlag.ClearAndSelect
            | QItemSelectionModel.SelectionFlag.Rows
        )
        self.table.selectionModel().select(chosen, flags)  # one selectionChanged for the lot
        self._on_selection()  # also when nothing changed (after a reset)

    def _on_selection(self, *_: object) -> None:
        from sslstudio.gui.run.history import load_details

        self._update_buttons()
        owned = self._owned()
        for path in self.selected_paths()[:MAX_COMPARE]:
            key = (path, self._generation)
            if path not in self._details and key not in self._pending:
                self._pending.add(key)
                self._start(lambda p=path: load_details(Path(p), owned), ("details", *key))
        self._show_details()

    def _update_buttons(self) -> None:
        runs = self.selected_runs()
        one = len(runs) == 1
        self.resume_button.setEnabled(
            one and runs[0].resumable and not self.controller.is_running()
        )
        self.folder_button.setEnabled(one)
        self.delete_button.setEnabled(bool(runs) and not any(r.state == RUNNING for r in runs))
        if one and runs[0].state == RUNNING:
            self.delete_button.setToolTip("A run that is training cannot be deleted")
        else:
            self.delete_button.setToolTip(
                with_shortcut("Delete the selected runs and their checkpoints", "Del")
            )

    # -- details ------------------------------------------------------------------------------

    def _show_details(self) -> None:
        paths = self.selected_paths()
        shown = [self._details[p] for p in paths[:MAX_COMPARE] if p in self._details]
        if not paths:
            self.details.clear(
                "Select a run to see its settings and curves." if self.model.rowCount() else ""
            )
        elif len(shown) < min(len(paths), MAX_COMPARE):
            self.details.clear("Reading…")
        else:
            self.details.show_runs(shown, selected=len(paths))

    # -- actions ------------------------------------------------------------------------------

    @Slot()
    def _on_resume(self) -> None:
        runs = self.selected_runs()
        if len(runs) == 1 and runs[0].resumable and not self.controller.is_running():
            self.resumeRequested.emit(runs[0].path)

    @Slot()
    def open_selected_folder(self) -> None:
        runs = self.selected_runs()
        if len(runs) == 1:
            QDesktopServices.openUrl(QUrl.fromLocalFile(runs[0].path))

    @Slot()
    def delete_selected(self) -> None:
        runs = [r for r in self.selected_runs() if r.state != RUNNING]
        if not runs or len(runs) != len(self.selected_runs()):
            return
        names = "\n".join(f"• {r.name}" for r in runs[:8]) + (
            f"\n… and {len(runs) - 8} more" if len(runs) > 8 else ""
        )
        answer = QMessageBox.question(
            self,
            "Delete runs?",
            f"Delete {'this run' if len(runs) == 1 else f'these {len(runs)} runs'} with all "
            "checkpoints and "
            f"metrics? This cannot be undone.\n\n{names}",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel,
        )
        if answer != QMessageBox.StandardButton.Yes:
            return
        paths = [r.path for r in runs]
        self.delete_button.setEnabled(False)
        self._start(lambda: _delete_all(paths), ("delete",))

    @Slot()
    def choose_run(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a run folder", str(runs_dir()))
        if folder:
            self.add_run(folder)

    def add_run(self, folder: str) -> bool:
        """Show a run folder from anywhere (kept in the list across sessions) and select it."""
        path = Path(folder)
        if not (path / "config.json").is_file():
            self.error_box = QMessageBox(
                QMessageBox.Icon.Warning,
                "Not a run folder",
                f"{folder} holds no config.json: choose the folder of one run "
                "(it contains config.json, metrics.jsonl and checkpoints/).",
                QMessageBox.StandardButton.Ok,
                self,
            )
            self.error_box.open()
            return False
        if path.resolve().parent != runs_dir().resolve():
            extra = [f for f in self.extra_folders() if Path(f).resolve() != path.resolve()]
            self.settings.set("opened_runs", [str(path), *extra][:50])
        self._select_after = str(path)
        self.refresh()
        return True

    def _on_live_tick(self) -> None:
        if self.isVisible() and self.controller.is_running() and not self.listing:
            self.refresh()

    def _on_run_event(self, ev: object) -> None:
        if isinstance(ev, RunStarted):
            self.refresh()  # the new run appears as running

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 (Qt override)
        super().showEvent(event)
        if time.monotonic() - self._refreshed_at > 2.0:
            self.refresh()

    def shutdown(self) -> None:
        for job in list(self._jobs):
            job.wait(10_000)


def _delete_all(paths: list[str]) -> list[tuple[str, str]]:
    """Delete each run; (path, reason) for those that could not be deleted."""
    from sslstudio.gui.run.history import delete_run

    failures = []
    for p in paths:
        try:
            delete_run(Path(p))
        except Exception as exc:  # a running run (locked), permissions, a vanished folder
            failures.append((p, str(exc)))
    return failures
