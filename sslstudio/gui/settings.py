"""A small JSON settings store: last folder, window geometry, recent folders, last choices.

Plain JSON instead of QSettings so the file is readable, portable and testable without Qt.
Reads are typed by their default (``get("dark", False)`` never turns the string ``"false"``
into ``True``); a damaged file is moved aside and defaults are used, so a bad settings file
can never stop the window from opening.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any, TypeVar

from sslstudio.paths import settings_path

log = logging.getLogger(__name__)

T = TypeVar("T")
MAX_RECENT = 8
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off", ""})


class Settings:
    """Key -> JSON value, saved atomically on every :meth:`set`.

    Args:
        path: the JSON file; default :func:`sslstudio.paths.settings_path` (``SSLSTUDIO_HOME``
            redirects it, which the tests use).
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else settings_path()
        self.moved_aside: Path | None = None  # where a damaged file went, to tell the user
        self._data: dict[str, Any] = self._load()

    def _load(self) -> dict[str, Any]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            log.warning("cannot read settings %s: %s; using defaults", self.path, exc)
            return {}
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                raise ValueError(f"top level is {type(data).__name__}, not an object")
        except ValueError as exc:
            self._move_aside(exc)
            return {}
        return data

    def _move_aside(self, exc: Exception) -> None:
        # kept, not deleted: the user may want to recover a hand-edited value from it
        target = self.path.with_name(f"{self.path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
        try:
            os.replace(self.path, target)
            self.moved_aside = target
        except OSError:
            target = None
        log.warning(
            "settings file %s is damaged (%s); moved to %s, using defaults", self.path, exc, target
        )

    def get(self, key: str, default: T) -> T:
        """The stored value coerced to ``type(default)``, or ``default`` when absent or unusable."""
        if key not in self._data:
            return default
        return coerce(self._data[key], default)

    def set(self, key: str, value: Any) -> None:
        self._data[key] = value
        self.save()

    def update(self, values: dict[str, Any]) -> None:
        self._data.update(values)
        self.save()

    def remove(self, key: str) -> None:
        if self._data.pop(key, None) is not None:
            self.save()

    def save(self) -> None:
        """Write atomically; a failure is logged, never raised (settings are a convenience)."""
        tmp = self.path.with_name(f".tmp-{os.getpid()}-{self.path.name}")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(self._data, indent=2, sort_keys=True), encoding="utf-8")
            os.replace(tmp, self.path)
        except (OSError, TypeError, ValueError) as exc:
            log.warning("cannot save settings to %s: %s", self.path, exc)
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)

    def recent_folders(self) -> list[str]:
        return [f for f in self.get("recent_folders", []) if isinstance(f, str)]

    def add_recent_folder(self, folder: str) -> list[str]:
        recent = [folder] + [f for f in self.recent_folders() if f != folder]
        self.set("recent_folders", recent[:MAX_RECENT])
        return recent[:MAX_RECENT]


def coerce(value: Any, default: T) -> T:
    """``value`` as ``type(default)`` where that is unambiguous, else ``default``."""
    if default is None:
        return value
    for kind, convert in _CONVERTERS:  # bool before int: bool is an int subclass
        if isinstance(default, kind):
            out = convert(value)
            return default if out is None else out  # type: ignore[return-value]
    if isinstance(default, (list, tuple)):
        return type(default)(value) if isinstance(value, (list, tuple)) else default  # type: ignore[return-value]
    return value if isinstance(value, type(default)) else default


def _to_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    return None


def _to_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return _parsed(value, int)


def _to_float(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return _parsed(value, float)


def _parsed(value: Any, kind: type) -> Any:
    if isinstance(value, str):
        try:
            return kind(value.strip())
        except ValueError:
            return None
    return None


_CONVERTERS: tuple[tuple[type, Any], ...] = (
    (bool, _to_bool),
    (int, _to_int),
    (float, _to_float),
    (str, lambda v: v if isinstance(v, str) else None),
    (dict, lambda v: v if isinstance(v, dict) else None),
)
