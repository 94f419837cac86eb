"""Render every page of the window offscreen on the sample images and save PNGs.

    python bench/screenshots.py [--out docs/screenshots] [--dark] [--size 1440x900]

Trains a tiny model twice first (10 steps, then a second run with other options stopped half-way)
so the Train page shows curves and the Runs page compares two runs. Runs, caches and settings go
to a temporary SSLSTUDIO_HOME, never the user's.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIZE = (1440, 900)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    p.add_argument("--dark", action="store_true", help="the dark theme (files get a -dark suffix)")
    p.add_argument(
        "--size",
        default="1440x900",
        help="window size WxH; sizes other than 1440x900 go to a subfolder",
    )
    args = p.parse_args(argv)
    global SIZE
    SIZE = tuple(int(v) for v in args.size.lower().split("x"))
    if args.size != "1440x900":
        args.out = str(Path(args.out) / args.size)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    home = tempfile.mkdtemp(prefix="sslstudio-shots-")
    os.environ["SSLSTUDIO_HOME"] = home
    try:
        return shoot(Path(args.out), dark=args.dark)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def shoot(out: Path, dark: bool) -> int:
    from sslstudio.gui import theme
    from sslstudio.gui.app import make_app, wait_until
    from sslstudio.gui.main_window import STEPS, MainWindow
    from sslstudio.paths import sample_images_dir

    app = make_app()
    theme.apply_theme(app, dark=dark)
    window = MainWindow()
    window.resize(*SIZE)
    window.show()
    try:
        t0 = time.monotonic()
        window.open_folder(sample_images_dir())
        wait_until(
            app,
            lambda: window.data_page.index is not None and window.catalog is not None,
            600,
            "scan + engine",
        )
        base = window.config_model.config
        tiny = dataclasses.replace(
            base,
            backbone="tiny_cnn",
            image_size=32,
            batch_size=16,
            epochs=2,
            max_steps=10,
            monitor_every=2,
            checkpoint_every=5,
            preset="histopathology",
        )
        # first a run with a warmer temperature, stopped half-way, then the one the Train page shows
        from sslstudio.core.events import StepLogged
        from sslstudio.core.transforms.presets import preset

        window.load_config(
            dataclasses.replace(
                tiny, augment=preset("histopathology", 32), method_options={"temperature": 0.5}
            )
        )

        def stop_at_5(ev):
            return isinstance(ev, StepLogged) and ev.step == 4 and window.controller.stop()

        window.controller.event.connect(stop_at_5)
        window.start_run()
        wait_until(app, lambda: not window.controller.is_running(), 600, "the first run")
        window.controller.event.disconnect(stop_at_5)
        window.load_config(dataclasses.replace(tiny, augment=preset("histopathology", 32)))
        window.start_run()
        wait_until(app, lambda: not window.controller.is_running(), 600, "10 training steps")
        window.runs_page.refresh()
        wait_until(app, lambda: not window.runs_page.listing, 120, "the runs list")
        window.runs_page.select_paths([r.path for r in window.runs_page.model.runs()[:2]])
        wait_until(
            app,
            lambda: window.runs_page.details.caption.text().startswith("Comparing"),
            120,
            "two runs' details",
        )
        # the Method page shows a run one would really launch next (BYOL: its momentum schedule
        # too),
        # with a measured estimate
        window.load_config(
            dataclasses.replace(
                tiny,
                augment=preset("histopathology", 32),  # the Augment page as the runs had it
                method="byol",
                method_options={},
                backbone="resnet18",
                image_size=32,
                batch_size=32,
                epochs=100,
                max_steps=0,
                monitor_every=100,
                checkpoint_every=200,
            )
        )
        window.method_page.estimate()
        wait_until(app, lambda: not window.method_page.is_estimating, 600, "the time estimate")
        window.augment_page.regenerate()
        made = window.augment_page.previews_made
        wait_until(
            app, lambda: window.augment_page.previews_made > made, 120, "the augmentation preview"
        )
        prepare_explore_and_export(app, window, wait_until)
        out.mkdir(parents=True, exist_ok=True)
        suffix = "-dark" if dark else ""
        for name in STEPS:
            window.show_page(name)
            window.train_page.redraw_now()
            for _ in range(20):  # let layouts, thumbnails and plots settle
                app.processEvents()
                time.sleep(0.02)
            path = out / f"{name.lower()}{suffix}.png"
            if not window.grab().save(str(path)):
                print(f"could not write {path}", file=sys.stderr)
                return 1
            print(f"{path}  ({window.width()}x{window.height()})")
        print(f"done in {time.monotonic() - t0:.1f} s")
    finally:  # a failed wait still stops the run and the estimate before the threads are destroyed
        window.close()
        window.controller.shutdown(60_000)
        app.processEvents()
    return 0


def prepare_explore_and_export(app, window, wait_until) -> None:
    """Explore the last run (3 folder classes, 4 labels each, classified; a neighbour query) and
    export it, so both pages show results rather than empty panels."""
    import numpy as np

    run = window.runs_page.model.runs()[0].path
    page = window.explore_page
    page.open_run(run)
    wait_until(
        app, lambda: page.session.emb is not None and not page.session.is_busy(), 600, "embeddings"
    )
    emb = page.session.emb
    for c, name in enumerate(emb.classes[:3]):
        page.labels.add_class(name)
        page._selected = np.nonzero(emb.labels == c)[0][:4].tolist()
        page.labels.assign_selected()
    page.labels.train()
    wait_until(
        app,
        lambda: page.session.predictions is not None and not page.session.is_busy(),
        600,
        "classifier",
    )
    page.query_row(10)
    export = window.export_page
    export.set_run(str(run))
    wait_until(app, lambda: export.selected_run() == str(run), 120, "the export page's run")
    export.start_export()
    wait_until(app, lambda: not export.exporting, 600, "the export")


if __name__ == "__main__":
    sys.exit(main())
