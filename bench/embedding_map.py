"""How the Explore page's embedding map scales: 10k, 100k and 1M points, offscreen.

Per size, in one 900x600 widget (20 categories plus unlabelled points):
  build      set_points + set_colours (the Python side: records, groups, legend)
  render     the first full render (``widget.grab()``)
  redraw     a render after panning (what each frame of a drag or zoom costs)
  hover      one nearest-point lookup (median of 200 random cursor positions)
  box        select_rect over about a quarter of the points, including redrawing the selection
  lasso      select_polygon with a 200-vertex circle, including redrawing the selection
  setData    pyqtgraph's own ScatterPlotItem(x, y, brush=...) for all N points, side by side:
             what ``build`` would cost without the NumPy fast path (one item, no legend)

    python bench/embedding_map.py                       # 10k, 100k, 1M
    python bench/embedding_map.py --sizes 10000 --out /tmp/embedding_map.json

Offscreen rendering is Qt's raster engine on the CPU, as on most desktops without OpenGL.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from bench import record  # noqa: E402


def clustered(n: int, k: int, seed: int = 0) -> tuple:
    """``n`` points in ``k`` Gaussian clusters, their cluster ids, 5% of them unlabelled (-1)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    cats = rng.integers(0, k, n)
    coords = rng.uniform(-20, 20, (k, 2))[cats] + rng.normal(0, 1.5, (n, 2))
    cats[rng.random(n) < 0.05] = -1
    return coords.astype(np.float32), cats


def ms(fn) -> float:  # noqa: ANN001
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000


def measure(n: int, app) -> dict:  # noqa: ANN001
    import numpy as np
    import pyqtgraph as pg

    from sslstudio.gui.pages.explore.embedding_map import EmbeddingMap

    coords, cats = clustered(n, 20)
    m = EmbeddingMap()
    m.resize(900, 600)
    m.show()
    app.processEvents()
    row: dict = {"points": n}
    row["build_ms"] = ms(
        lambda: (m.set_points(coords), m.set_colours(cats, [f"c{i}" for i in range(20)]))
    )
    row["render_ms"] = ms(m.grab)
    redraws = []
    for _ in range(3):
        m.vb.translateBy(x=0.5)
        redraws.append(ms(m.grab))
    row["redraw_ms"] = statistics.median(redraws)
    rng = np.random.default_rng(1)
    (x0, x1), (y0, y1) = m.vb.viewRange()
    probes = rng.uniform((x0, y0), (x1, y1), (200, 2))
    row["hover_ms"] = statistics.median(ms(lambda p=p: m.nearest(p[0], p[1])) for p in probes)
    cx, cy = float(np.median(coords[:, 0])), float(np.median(coords[:, 1]))
    row["box_ms"] = ms(lambda: m.select_rect(x0, y0, cx, cy))
    row["box_selected"] = int(m.selection().size)
    a = np.linspace(0, 2 * np.pi, 200, endpoint=False)
    r = 0.3 * min(x1 - x0, y1 - y0)
    circle = np.c_[cx + r * np.cos(a), cy + r * np.sin(a)]
    row["lasso_ms"] = ms(lambda: m.select_polygon(circle))
    row["lasso_selected"] = int(m.selection().size)
    brush = pg.mkBrush("#1f77b4")
    row["pg_setdata_ms"] = ms(
        lambda: pg.ScatterPlotItem(x=coords[:, 0], y=coords[:, 1], size=4, pen=None, brush=brush)
    )
    m.close()
    m.deleteLater()
    app.processEvents()
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "embedding_map.json"))
    args = p.parse_args(argv)

    import pyqtgraph as pg
    import PySide6
    from PySide6.QtWidgets import QApplication

    from sslstudio.gui.theme import apply_theme

    app = QApplication.instance() or QApplication([])
    apply_theme(app, dark=False)
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    rows = [measure(n, app) for n in args.sizes]

    cols = ("build_ms", "render_ms", "redraw_ms", "hover_ms", "box_ms", "lasso_ms", "pg_setdata_ms")
    print(f"{'points':>10} " + " ".join(f"{c.removesuffix('_ms'):>9}" for c in cols) + "   (ms)")
    for r in rows:
        print(f"{r['points']:>10,} " + " ".join(f"{r[c]:>9.2f}" for c in cols))
    result = {
        "environment": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "pyside6": PySide6.__version__,
            "pyqtgraph": pg.__version__,
            "qpa": os.environ.get("QT_QPA_PLATFORM"),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg() if hasattr(os, "getloadavg") else None,
        },
        "widget_px": [900, 600],
        "categories": 20,
        "rows": rows,
    }
    record.write(Path(args.out), result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
