"""Shared fixtures: small generated image folders (no downloads), an isolated user home."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from pathlib import Path

import pytest

from tests.shapes import make_shapes_folder


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, monkeypatch):
    """Runs, caches and settings go to a temp folder, never the developer's own."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("SSLSTUDIO_HOME", str(home))
    return home


@pytest.fixture(scope="module")
def module_home(tmp_path_factory):
    """A private SSLSTUDIO_HOME for module-scoped fixtures (the autouse one above is per test)."""
    mp = pytest.MonkeyPatch()
    home = tmp_path_factory.mktemp("module-home")
    mp.setenv("SSLSTUDIO_HOME", str(home))
    yield home
    mp.undo()


@pytest.fixture
def tiny_folder(tmp_path) -> Path:
    """24 labelled 24 px images in 2 classes: enough for a few training steps."""
    return make_shapes_folder(tmp_path / "tiny", per_class=12, size=24, shapes=("circle", "square"))
