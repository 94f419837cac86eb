"""The menu bar: every main action once, with its shortcut, so menus, buttons and tooltips agree.

Shortcuts: Ctrl+O open a folder, Ctrl+Shift+O open a run, Ctrl+Q quit; Ctrl+R start, Ctrl+Shift+P
pause/resume, Ctrl+. stop, Ctrl+E estimate time per epoch, Ctrl+Shift+C copy the command line;
Ctrl+1 … Ctrl+7 go to a step, F5 refresh the runs list, Del delete the selected runs (on the
Runs table).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMainWindow, QMenu


@dataclass
class Actions:
    open_folder: QAction
    recent_menu: QMenu
    open_run: QAction
    quit: QAction
    start: QAction
    pause: QAction
    stop: QAction
    estimate: QAction
    copy_command: QAction
    refresh_runs: QAction
    about: QAction
    go: list[QAction] = field(default_factory=list)


def action(
    parent: QMainWindow,
    text: str,
    keys: str | QKeySequence.StandardKey | None,
    slot: Callable[..., object],
    tip: str = "",
) -> QAction:
    """A QAction whose tooltip and status tip name its shortcut."""
    a = QAction(text, parent)
    if keys is not None:
        a.setShortcut(QKeySequence(keys))
    a.triggered.connect(lambda _checked=False: slot())
    if tip:
        a.setStatusTip(tip)
    a.setToolTip(_tip(tip or text.replace("&", "").rstrip("…"), a.shortcut()))
    a.setShortcutVisibleInContextMenu(True)
    return a


def _tip(text: str, seq: QKeySequence) -> str:
    keys = seq.toString(QKeySequence.SequenceFormat.NativeText)
    return f"{text} ({keys})" if keys else text


def build_menus(
    w: QMainWindow, steps: Sequence[str], handlers: dict[str, Callable[..., object]]
) -> Actions:
    """File, Run, Go, Help. ``handlers`` maps action names to the window's slots."""
    bar = w.menuBar()
    h = handlers
    m = bar.addMenu("&File")
    acts = Actions(
        open_folder=action(
            w,
            "&Open folder…",
            QKeySequence.StandardKey.Open,
            h["open_folder"],
            "Choose a folder of images to train on",
        ),
        recent_menu=QMenu("Open &recent", w),
        open_run=action(
            w,
            "Open &run…",
            "Ctrl+Shift+O",
            h["open_run"],
            "Show a run folder (config, metrics, checkpoints) on the Runs page",
        ),
        quit=action(w, "&Quit", QKeySequence.StandardKey.Quit, h["quit"]),
        start=action(w, "&Start", "Ctrl+R", h["start"], "Start training with the current settings"),
        pause=action(w, "&Pause", "Ctrl+Shift+P", h["pause"], "Pause or resume the run"),
        stop=action(w, "S&top", "Ctrl+.", h["stop"], "Save a checkpoint and stop the run"),
        estimate=action(
            w,
            "&Estimate time per epoch",
            "Ctrl+E",
            h["estimate"],
            "Measure a few training steps and estimate the time per epoch",
        ),
        copy_command=action(
            w,
            "&Copy as command",
            "Ctrl+Shift+C",
            h["copy_command"],
            "Copy the equivalent `sslstudio train` command line",
        ),
        # F5, not StandardKey.Refresh: on GNOME that is also Ctrl+R, which starts a run here
        refresh_runs=action(
            w, "Re&fresh runs", "F5", h["refresh_runs"], "Read the runs folder again"
        ),
        about=action(w, "&About SSL Studio", None, h["about"]),
    )
    acts.quit.setMenuRole(QAction.MenuRole.QuitRole)
    acts.about.setMenuRole(QAction.MenuRole.AboutRole)
    m.addAction(acts.open_folder)
    m.addMenu(acts.recent_menu)
    m.addAction(acts.open_run)
    m.addSeparator()
    m.addAction(acts.quit)

    r = bar.addMenu("&Run")
    for a in (acts.start, acts.pause, acts.stop):
        r.addAction(a)
    r.addSeparator()
    r.addAction(acts.estimate)
    r.addAction(acts.copy_command)

    g = bar.addMenu("&Go")
    for i, name in enumerate(steps, start=1):
        go = action(
            w, f"&{i} {name}", f"Ctrl+{i}", lambda n=name: h["go"](n), f"Show the {name} page"
        )
        g.addAction(go)
        acts.go.append(go)
    g.addSeparator()
    g.addAction(acts.refresh_runs)

    bar.addMenu("&Help").addAction(acts.about)
    for a in (acts.start, acts.pause, acts.stop, acts.estimate, acts.refresh_runs):
        a.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
    return acts
