"""Where things live: bundled resources, the user's runs folder, the decode cache."""

from __future__ import annotations

import os
import sys
from pathlib import Path

APP_NAME = "sslstudio"


def resource_path(*parts: str) -> Path:
    """A file under ``resources/``: inside a PyInstaller bundle, a wheel, or a checkout."""
    candidates = []
    if hasattr(sys, "_MEIPASS"):  # PyInstaller >= 6 points this at _internal/
        candidates.append(Path(sys._MEIPASS) / "resources")
    here = Path(__file__).resolve().parent
    candidates += [here / "resources", here.parent / "resources"]
    for base in candidates:
        if base.is_dir():
            return base.joinpath(*parts)
    return candidates[-1].joinpath(*parts)


def sample_images_dir() -> Path:
    """The bundled demo folder (Kather et al. 2016, CC BY 4.0)."""
    return resource_path("sample_images")


def _user_dir(kind: str) -> Path:
    override = os.environ.get("SSLSTUDIO_HOME")
    if override:
        return Path(override) / kind
    import platformdirs

    if kind == "cache":
        return Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False))
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False)) / kind


def runs_dir() -> Path:
    """Default parent folder of run folders (``SSLSTUDIO_HOME`` overrides, e.g. in tests)."""
    return _user_dir("runs")


def cache_dir() -> Path:
    """Where decoded image caches are kept; safe to delete at any time."""
    return _user_dir("cache")


def settings_path() -> Path:
    return _user_dir("settings") / "settings.json"
