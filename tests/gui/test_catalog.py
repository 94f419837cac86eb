"""Loading the engine: started before the window is built, without garbage collection meanwhile."""

from __future__ import annotations

import gc
import threading
import time

import pytest

from sslstudio.gui import catalog


@pytest.fixture
def fresh_catalog(monkeypatch):
    """An empty catalog cache and a fake engine that records whether collection was on."""
    seen: dict[str, object] = {}
    started = threading.Event()

    def fake_load() -> object:
        started.set()
        seen["gc_enabled"] = gc.isenabled()
        seen["thread"] = threading.current_thread().name
        return "the catalog"

    monkeypatch.setattr(catalog, "_cached", None)
    monkeypatch.setattr(catalog, "_preloading", threading.Event())
    monkeypatch.setattr(catalog, "load_catalog", fake_load)
    yield seen, started
    gc.enable()
    gc.unfreeze()


def wait_for(done, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_preload_imports_the_engine_off_the_calling_thread_with_collection_paused(
    fresh_catalog,
) -> None:
    seen, _ = fresh_catalog
    assert gc.isenabled()
    catalog.preload()
    catalog.preload()  # a second call starts nothing more
    wait_for(lambda: catalog._cached == "the catalog")
    assert seen["thread"] == "sslstudio-engine"
    assert seen["gc_enabled"] is False  # full collections over torch's objects stalled the window
    wait_for(lambda: gc.isenabled())  # and collection is back once the imports are done
    assert gc.get_freeze_count() > 0  # what was imported is out of later collections' way


def test_the_loader_reports_what_the_preload_loaded(fresh_catalog, qtbot) -> None:
    seen, _ = fresh_catalog
    catalog.preload()
    loader = catalog.CatalogLoader()
    with qtbot.waitSignal(loader.ready, timeout=5_000) as got:
        loader.start()
    assert got.args == ["the catalog"]
    assert gc.isenabled()


def test_a_failed_preload_is_reported_by_the_loader(monkeypatch, qtbot) -> None:
    monkeypatch.setattr(catalog, "_cached", None)
    monkeypatch.setattr(catalog, "_preloading", threading.Event())

    def broken() -> object:
        raise ImportError("libtorch_cpu.so: cannot open shared object file")

    monkeypatch.setattr(catalog, "load_catalog", broken)
    catalog.preload()
    loader = catalog.CatalogLoader()
    with qtbot.waitSignal(loader.failed, timeout=5_000) as got:
        loader.start()
    assert "libtorch_cpu.so" in got.args[0]
    assert gc.isenabled()
