"""The Method page follows the registry: every method listed, its options form generated from its
Config (bool, choices, Literal, Enum), a momentum plot when it has a momentum schedule; the
CPU-threads
setting; the measured time-per-epoch estimate."""

from __future__ import annotations

import dataclasses
import enum
import threading
from dataclasses import dataclass, field
from typing import Literal

import pytest
import torch
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QComboBox

from sslstudio.config import OptimConfig, RunConfig
from sslstudio.core.methods import METHODS, Method, method_config
from sslstudio.gui.catalog import gui_threads, method_infos
from sslstudio.gui.pages.method.schedule_plots import momentum_fields
from sslstudio.gui.run.estimate import (
    Estimate,
    EstimateWorker,
    describe_estimate,
    device_words,
    format_duration,
    measure,
)


class Pool(enum.Enum):
    AVG = "avg"
    MAX = "max"


@dataclass(frozen=True)
class NewConfig:
    temperature: float = field(default=0.1, metadata={"min": 0.01, "max": 1.0, "help": "τ"})
    symmetric: bool = field(default=True, metadata={"help": "both directions"})
    loss: str = field(default="cosine", metadata={"choices": ("cosine", "l2"), "help": "distance"})
    heads: int = field(default=4, metadata={"choices": (1, 2, 4, 8), "help": "an int choice"})
    norm: Literal["batch", "layer"] = "layer"
    pool: Pool = Pool.AVG
    teacher_momentum_start: float = field(default=0.99, metadata={"min": 0.0, "max": 1.0})
    teacher_momentum_end: float = field(default=1.0, metadata={"min": 0.0, "max": 1.0})
    crops: tuple[int, ...] = (96, 96)  # no control: kept as is


class NewMethod(Method):
    """A method as a colleague might add one tomorrow."""

    Config = NewConfig
    summary = "A new method."
    paper = "Someone et al. 2026, https://example.org/paper"

    def __init__(self, backbone, config) -> None:  # noqa: ANN001
        super().__init__(backbone, config)
        self.head = torch.nn.Linear(backbone.feature_dim, 8)

    def training_step(self, batch):  # noqa: ANN001, ANN201
        z0, z1 = (self.head(self.backbone(v)) for v in batch.views)
        return (z0 - z1).pow(2).mean(), {}


@pytest.fixture
def new_method(monkeypatch: pytest.MonkeyPatch) -> str:
    NewMethod.name = "zzz_new"
    monkeypatch.setitem(METHODS, "zzz_new", NewMethod)
    return "zzz_new"


def test_momentum_fields_are_found_by_name() -> None:
    assert momentum_fields(NewConfig) == ("teacher_momentum_start", "teacher_momentum_end")
    if "byol" in METHODS:
        assert momentum_fields(METHODS["byol"].Config) == ("momentum_base", "momentum_final")
    assert momentum_fields(METHODS["simclr"].Config) is None


def test_every_registered_method_is_listed_and_a_new_one_works(
    ready_window, new_method: str
) -> None:
    page = ready_window.method_page
    catalog = dataclasses.replace(ready_window.catalog, methods=method_infos(METHODS))
    page.set_catalog(catalog)
    listed = [
        page.method_list.item(i).data(Qt.ItemDataRole.UserRole)
        for i in range(page.method_list.count())
    ]
    assert sorted(listed) == sorted(METHODS) and new_method in listed
    names = [page.method_list.item(i).text() for i in range(page.method_list.count())]
    assert "SimCLR" in names and "zzz_new" in names

    for name in listed:  # each method's generated form gives options its own validation accepts
        page._select_method(name)
        cfg = page.model.config
        assert cfg.method == name
        method_config(name, cfg.method_options)
        has = momentum_fields(METHODS[name].Config) is not None
        assert page.schedules.momentum_plot.isVisibleTo(page) == has, name

    page._select_method(new_method)
    form = page.options_form
    assert isinstance(form.control("symmetric"), QCheckBox)
    for name in ("loss", "heads", "norm", "pool"):
        assert isinstance(form.control(name), QComboBox)
    assert "crops" not in form.field_names
    form.control("symmetric").setChecked(False)
    form.control("loss").setCurrentText("l2")
    form.control("heads").setCurrentText("8")
    form.control("norm").setCurrentText("batch")
    form.control("pool").setCurrentText("max")
    opts = page.model.config.method_options
    assert (opts["symmetric"], opts["loss"], opts["heads"], opts["norm"], opts["pool"]) == (
        False,
        "l2",
        8,
        "batch",
        "max",
    )
    assert (
        RunConfig.from_dict(page.model.config.to_dict()).method_options["heads"] == 8
    )  # JSON-safe
    assert opts["crops"] == (96, 96)
    xs, ys = page.schedules.momentum_curve.getData()
    assert len(xs) > 0 and ys[0] == pytest.approx(0.99) and ys[-1] == pytest.approx(1.0)
    assert "momentum 0.99 → 1" in page.schedules.caption.text()
    form.control("teacher_momentum_start").setValue(1.0)
    form.control("teacher_momentum_end").setValue(0.5)  # not a schedule: said, not raised
    assert "momentum must satisfy" in page.schedules.caption.text()


def test_threads_default_to_all_cores_but_one_and_feed_the_config(ready_window) -> None:
    w = ready_window
    page = w.method_page
    control = page.run_form.control("threads")
    assert control.value() == gui_threads() and control.minimum() == 1
    control.setValue(1)
    assert w.config_model.config.threads == 1
    assert "1 thread" in page.device_label.text()
    w.load_config(
        dataclasses.replace(w.config_model.config, threads=7)
    )  # a run's config keeps this machine's
    assert page.threads() == 1


def test_measure_times_real_steps_and_restores_threads() -> None:
    before = torch.get_num_threads()
    cfg = RunConfig(
        backbone="tiny_cnn", image_size=32, batch_size=8, epochs=3, threads=1, device="cpu"
    )
    seen: list[tuple[int, int]] = []
    est = measure(cfg, 100, progress=lambda d, n: seen.append((d, n)))
    assert torch.get_num_threads() == before
    assert seen == [(1, 3), (2, 3), (3, 3)] and est.measured_steps == 2
    assert est.steps_per_epoch == 12 and est.batch_size == 8 and est.seconds_per_step > 0
    assert est.device == "cpu (1 thread)"
    head, detail, how = describe_estimate(est, epochs=3)
    assert head.startswith("≈ ") and head.endswith("per epoch on CPU, 1 thread (measured)")
    assert "× 12 steps of 8 images; 3 epochs ≈" in detail and "over 2 training steps" in how


def test_estimate_worker_can_be_cancelled() -> None:
    worker = EstimateWorker(RunConfig(backbone="tiny_cnn", image_size=32, batch_size=4), 16)
    got: list[str] = []
    worker.cancelled.connect(lambda: got.append("cancelled"))
    worker.done.connect(lambda est: got.append("done"))
    worker.cancel()
    worker.run()  # in this thread: the cancel is seen before the first step
    assert got == ["cancelled"]


def test_formatting() -> None:
    assert format_duration(0.42) == "0.4 s" and format_duration(45) == "45 s"
    assert format_duration(200) == "3 min 20 s" and format_duration(180) == "3 min"
    assert (
        format_duration(7500) == "2 h 05 min" and format_duration(3 * 86400 + 4 * 3600) == "3 d 4 h"
    )
    assert device_words("cpu (2 threads)") == "CPU, 2 threads"
    assert device_words("cuda (NVIDIA H100 80GB HBM3)") == "NVIDIA H100 80GB HBM3"
    est = Estimate(
        seconds_per_step=0.5,
        steps_per_epoch=400,
        batch_size=64,
        device="cpu (2 threads)",
        num_images=25_600,
        measured_steps=2,
    )
    assert describe_estimate(est, 10)[0] == "≈ 3 min 20 s per epoch on CPU, 2 threads (measured)"


def test_the_estimate_button_measures_in_the_background(ready_window, qtbot) -> None:
    page = ready_window.method_page
    form = page.run_form
    form.control("backbone").setCurrentText("tiny_cnn")
    form.control("image_size").setValue(32)
    form.control("batch_size").setValue(16)
    page.run_form.control("threads").setValue(1)
    main_thread = threading.current_thread()
    page.estimate_button.click()
    assert page.is_estimating and page.estimate_button.text() == "Cancel"
    assert threading.current_thread() is main_thread
    qtbot.waitUntil(lambda: not page.is_estimating, timeout=60_000)
    text = page.estimate_label.text()
    assert text.startswith("≈ ") and text.endswith("per epoch on CPU, 1 thread (measured)"), text
    assert (
        "124 images" in page.estimate_label.toolTip()
        and page.estimate_button.text() == "Estimate time"
    )
    assert "× 7 steps of 16 images" in page.estimate_detail.text()  # 124 // 16
    form.control("batch_size").setValue(32)
    assert page.estimate_label.text() == "Settings changed: estimate again."
    page.set_run_active(True)
    assert not page.estimate_button.isEnabled()
    page.set_run_active(False)
    ready_window.actions_.estimate.trigger()  # Ctrl+E, then Cancel
    page.estimate_button.click()
    qtbot.waitUntil(lambda: not page.is_estimating, timeout=60_000)
    assert page.estimate_label.text() in ("Cancelled.",) or page.estimate_label.text().startswith(
        "≈ "
    )


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_can_be_estimated(name: str) -> None:
    """Multi-crop views, per-image indices, EMA updates: the estimate runs each method's real
    step."""
    from sslstudio.errors import ConfigError

    cfg = RunConfig(
        method=name, backbone="tiny_cnn", image_size=32, batch_size=4, threads=1, device="cpu"
    )
    try:
        est = measure(cfg, 8, steps=1)
    except ConfigError as exc:  # e.g. MAE needs a vision transformer: said in words, not a crash
        assert "backbone" in str(exc)
        return
    assert est.seconds_per_step > 0 and est.steps_per_epoch == 2


def test_applying_a_config_shows_its_method_options(ready_window) -> None:
    """A run's config (Runs ▸ Resume) brings its own method options, same method or another."""
    page = ready_window.method_page
    base = ready_window.config_model.config
    ready_window.load_config(
        dataclasses.replace(base, method="simclr", method_options={"temperature": 0.5})
    )
    assert page.options_form.control("temperature").value() == 0.5
    ready_window.load_config(
        dataclasses.replace(base, method="simclr", method_options={"temperature": 0.3})
    )
    assert page.options_form.control("temperature").value() == 0.3  # same method: new values
    other = next(n for n in METHODS if n != "simclr")
    ready_window.load_config(dataclasses.replace(base, method=other, method_options={}))
    assert page.model.config.method == other
    page._select_method("simclr")  # coming back: the values it had, not the other method's
    assert page.options_form.control("temperature").value() == 0.3


def test_with_several_gpus_the_page_offers_torchrun(ready_window) -> None:
    page = ready_window.method_page
    assert not page.all_gpus.isVisibleTo(page) and page.processes() == 1  # this machine: no GPUs
    catalog = ready_window.catalog
    methods = dict(catalog.methods)  # every method trains across processes; one that did not:
    methods["swav"] = dataclasses.replace(methods["swav"], distributed=False)
    assert all(info.distributed for name, info in catalog.methods.items())
    page.set_catalog(
        dataclasses.replace(catalog, cuda_name="Test GPU", cuda_count=4, methods=methods)
    )
    page._select_method("simclr")
    page.run_form.control("device").setCurrentText("auto")
    assert page.all_gpus.isVisibleTo(page) and "all 4 GPUs" in page.all_gpus.text()
    assert page.processes() == 1  # offered, not chosen
    page.all_gpus.setChecked(True)
    assert page.processes() == 4
    command = page.command_edit.toPlainText()
    assert command.startswith("torchrun --standalone --nproc_per_node=4 -m sslstudio train")
    assert command.endswith("--distributed")
    page._select_method("swav")  # a method without the distributed trait: not offered
    assert not page.all_gpus.isVisibleTo(page) and page.processes() == 1


def test_choosing_a_method_brings_its_optimiser_and_a_loaded_config_keeps_its_own(
    ready_window,
) -> None:
    page = ready_window.method_page
    base = ready_window.config_model.config
    page._select_method("mae")  # a user's choice: MAE's tested lr and weight decay
    optim = page.model.config.optim
    assert (optim.optimizer, optim.lr, optim.weight_decay) == ("adamw", 7.5e-4, 0.05)
    page._select_method("simclr")  # and back: the generic defaults again
    assert page.model.config.optim.weight_decay == OptimConfig().weight_decay
    mine = dataclasses.replace(OptimConfig(), optimizer="lars", lr=0.3, weight_decay=1e-6)
    ready_window.load_config(
        dataclasses.replace(base, method="mae", backbone="vit_tiny", optim=mine, method_options={})
    )
    assert page.model.config.optim == mine  # a run's config (Resume) is shown as it was


def test_the_papers_large_batch_recipe_is_shown_beside_the_method(ready_window) -> None:
    page = ready_window.method_page
    page._select_method("byol")
    assert "LARS" in page.paper.text() and "4096" in page.paper.text()
    page._select_method("simsiam")
    assert "batch 512" in page.paper.text() and "4096" not in page.paper.text()
