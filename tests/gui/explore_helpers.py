"""Shared by the Explore page tests."""

from __future__ import annotations


def open_explore_page(qtbot, run):  # noqa: ANN001, ANN201
    """An Explore page on ``run`` with its embeddings ready; call ``shutdown()`` when done."""
    from sslstudio.gui.pages.explore.page import ExplorePage
    from sslstudio.gui.settings import Settings

    p = ExplorePage(Settings())
    qtbot.addWidget(p)
    p.resize(1280, 800)
    p.show()
    p.open_run(run)
    qtbot.waitUntil(lambda: p.session.emb is not None and not p.session.is_busy(), timeout=60_000)
    return p
