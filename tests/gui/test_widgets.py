"""Throttled plots, the thumbnail grid at 100k items, the preview grid and the command line."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest

from sslstudio.config import OptimConfig, RunConfig
from sslstudio.core.data.scan import ImageIndex, ImageRecord
from sslstudio.gui.pages.method.command import command_line, missing_flags
from sslstudio.gui.qt_models import ImageListModel, ThumbnailCache
from sslstudio.gui.widgets.loss_plot import REDRAW_MS, CurveBuffer, Ema, ThrottledPlot
from sslstudio.gui.widgets.thumbnail_grid import ThumbnailGrid
from sslstudio.paths import sample_images_dir


def test_curve_buffer_doubles_and_keeps_order() -> None:
    buf = CurveBuffer(capacity=4)
    for i in range(9):
        buf.append(i, 2 * i)
    assert buf.capacity == 16 and len(buf) == 9
    np.testing.assert_array_equal(buf.x, np.arange(9))
    np.testing.assert_array_equal(buf.y, 2 * np.arange(9))
    buf.extend(np.arange(9, 40), np.zeros(31))
    assert len(buf) == 40 and buf.capacity == 64 and buf.x[-1] == 39
    buf.clear()
    assert len(buf) == 0 and buf.x.shape == (0,)
    with pytest.raises(ValueError):
        buf.extend([1, 2], [1])


def test_ema_is_bias_corrected() -> None:
    ema = Ema(0.9)
    assert np.isnan(ema.value)
    assert ema.update(5.0) == pytest.approx(5.0)  # not 0.5: start-up bias removed
    assert ema.update(5.0) == pytest.approx(5.0)
    ema.update(float("nan"))  # ignored
    assert ema.value == pytest.approx(5.0)


def test_plot_coalesces_appends_into_one_redraw(qtbot) -> None:
    plot = ThrottledPlot("loss")
    qtbot.addWidget(plot)
    plot.add_curve("loss", "b")
    for i in range(5000):
        plot.append("loss", i, 1.0 / (i + 1))
    assert plot.redraws == 0  # nothing drawn per step
    qtbot.waitUntil(lambda: plot.redraws == 1, timeout=REDRAW_MS * 10)
    xs, _ = plot._curves["loss"][1].getData()
    assert len(xs) == 5000
    qtbot.wait(REDRAW_MS * 2)
    assert plot.redraws == 1  # and nothing again until new data arrives


def _big_index(n: int) -> ImageIndex:
    # every row points at one real tile: decoding works, the test counts what is asked for
    sample = next(p for p in sorted(sample_images_dir().rglob("*.jpg")))
    rel = sample.relative_to(sample_images_dir()).as_posix()
    rec = ImageRecord(rel, 150, 150, "jpeg", "01_TUMOR", 1000, 0)
    return ImageIndex(root=str(sample_images_dir()), images=[rec] * n)


def test_thumbnail_grid_at_100k_items_asks_only_for_visible_ones(qtbot) -> None:
    cache = ThumbnailCache(size=64)
    model = ImageListModel(cache)
    grid = ThumbnailGrid(model, icon_size=64)
    qtbot.addWidget(grid)
    grid.resize(800, 600)
    grid.show()
    t0 = time.perf_counter()
    model.set_index(_big_index(100_000))
    qtbot.waitUntil(lambda: cache.decoded > 0, timeout=10_000)
    qtbot.wait(200)
    elapsed = time.perf_counter() - t0
    visible = (800 // 86 + 1) * (600 // 94 + 2)
    assert 0 < cache.requested <= 2 * visible, cache.requested
    grid.scrollToBottom()
    qtbot.waitUntil(
        lambda: model.rowCount() == 100_000 and cache.requested > visible // 2, timeout=5_000
    )
    qtbot.wait(200)
    assert cache.requested <= 4 * visible  # the middle 99.9k rows were never asked for
    assert elapsed < 5.0, f"laying out 100k items took {elapsed:.1f} s"
    cache.shutdown()


def test_command_line_round_trips_the_main_choices() -> None:
    cfg = dataclasses.replace(
        RunConfig(
            data_root="/data/my tiles",
            method="simclr",
            backbone="resnet18",
            image_size=64,
            batch_size=128,
            epochs=5,
            preset="histopathology",
            max_steps=10,
            method_options={"temperature": 0.1, "proj_out": 128},
            progressive_from=32,
            check_folder="/data/new_slides",
        ),
        optim=dataclasses.replace(OptimConfig(), lr=0.3, optimizer="lars"),
    )
    cmd = command_line(cfg, method_defaults={"temperature": 0.2, "proj_out": 128})
    assert cmd.startswith(
        "sslstudio train '/data/my tiles' --method simclr --backbone resnet18 --image-size 64 "
        "--batch-size 128 --epochs 5 --preset histopathology --lr 0.3 --optimizer lars"
    )
    assert "--max-steps 10" in cmd and "--option temperature=0.1" in cmd and "proj_out" not in cmd
    assert "--progressive-from 32" in cmd
    from sslstudio.cli.main import build_parser, config_from_args

    args = build_parser().parse_args(cmd.replace("'/data/my tiles'", "/tmp").split()[1:])
    back = config_from_args(args)
    for name in (
        "method",
        "backbone",
        "image_size",
        "batch_size",
        "epochs",
        "preset",
        "max_steps",
        "progressive_from",
        "check_folder",
    ):
        assert getattr(back, name) == getattr(cfg, name), name
    assert (
        back.optim.lr == 0.3
        and back.optim.optimizer == "lars"
        and back.method_options == {"temperature": 0.1}
    )
    assert back.optim.weight_decay == cfg.optim.weight_decay


def test_command_line_keeps_a_weight_decay_that_differs_from_the_methods_own() -> None:
    """MAE's defaults decay weights by 0.05; a window run at the generic 1e-4 must say so."""
    from sslstudio.cli.main import build_parser, config_from_args

    cfg = RunConfig(data_root="/tmp", method="mae", backbone="vit_tiny")
    assert cfg.optim.weight_decay == 1e-4
    back = config_from_args(build_parser().parse_args(command_line(cfg).split()[1:]))
    assert back.optim == cfg.optim
    assert missing_flags(cfg) == []
    assert "custom augmentations" in missing_flags(dataclasses.replace(cfg, preset="custom"))
