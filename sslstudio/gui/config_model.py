"""The run being set up: one frozen RunConfig that the Data, Augment and Method pages edit and
observe, and that Start, the estimate, the budget plan and "Copy as command" read."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal

from sslstudio.config import RunConfig

Rule = Callable[[RunConfig, RunConfig], RunConfig]


def changed_fields(old: RunConfig, new: RunConfig) -> frozenset[str]:
    """The top-level RunConfig fields whose values differ."""
    return frozenset(
        f.name
        for f in dataclasses.fields(RunConfig)
        if getattr(old, f.name) != getattr(new, f.name)
    )


class RunConfigModel(QObject):
    """Holds the current config; ``changed(RunConfig, frozenset[str])`` once per change, with the
    names of the top-level fields that changed (a nested section counts as its own name).

    A change that changes nothing emits nothing. A write made by a ``changed`` handler is held
    back and emitted after every handler has seen the first one, so no handler ever gets an
    older config after a newer one.
    """

    changed = Signal(object, object)

    def __init__(self, config: RunConfig | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._config = config if config is not None else RunConfig()
        self._rules: list[Rule] = []
        self._emitting = False
        self._pending: frozenset[str] = frozenset()

    @property
    def config(self) -> RunConfig:
        return self._config

    def add_rule(self, rule: Rule) -> None:
        """``rule(old, new) -> new``: what else an edit implies (an augmentation preset follows
        the image size), folded into the same single ``changed``. Not applied by :meth:`set`:
        a loaded config is shown as it was saved."""
        self._rules.append(rule)

    def update(self, **changes: Any) -> None:
        """An edit of top-level fields (``update(epochs=3)``)."""
        self._edit(dataclasses.replace(self._config, **changes))

    def replace(self, section: str, **changes: Any) -> None:
        """An edit inside a nested section (``replace("augment", hflip_p=1.0)``)."""
        inner = dataclasses.replace(getattr(self._config, section), **changes)
        self._edit(dataclasses.replace(self._config, **{section: inner}))

    def set(self, config: RunConfig) -> None:
        """Load a whole config (a resumed run, a budget plan, the last session's choices)."""
        self._commit(config)

    def _edit(self, new: RunConfig) -> None:
        old = self._config
        for rule in self._rules:
            new = rule(old, new)
        self._commit(new)

    def _commit(self, new: RunConfig) -> None:
        names = changed_fields(self._config, new)
        if not names:
            return
        self._config = new
        if self._emitting:
            self._pending |= names
            return
        self._emitting = True
        try:
            while names:
                self.changed.emit(self._config, names)
                names, self._pending = self._pending, frozenset()
        finally:
            self._emitting = False
            self._pending = frozenset()


class OwnEdits:
    """The fields a view is writing right now. Its controls already show them (and a field
    being typed in must not be reset under the cursor), so its ``changed`` handler skips them."""

    def __init__(self, model: RunConfigModel) -> None:
        self.model = model
        self._own: frozenset[str] = frozenset()

    def update(self, **changes: Any) -> None:
        self._own = frozenset(changes)
        try:
            self.model.update(**changes)
        finally:
            self._own = frozenset()

    def others(self, names: frozenset[str]) -> frozenset[str]:
        """Of the changed ``names``, those this view did not write itself."""
        return names - self._own
