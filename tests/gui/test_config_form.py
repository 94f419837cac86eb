"""The generated config form: controls per field type, ranges and help, exact round trips."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import pytest
from PySide6.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QLineEdit, QSpinBox

from sslstudio.config import AugmentConfig, OptimConfig, RunConfig
from sslstudio.core.transforms.presets import PRESETS, preset
from sslstudio.gui.widgets.config_form import ConfigForm, FloatSpinBox, field_label


@dataclass(frozen=True)
class Sample:
    ratio: float = field(default=0.25, metadata={"help": "a share", "min": 0.0, "max": 1.0})
    count: int = field(default=3, metadata={"help": "how many", "min": 1, "max": 10})
    on: bool = field(default=True, metadata={"help": "switch"})
    mode: str = field(default="b", metadata={"help": "pick one", "choices": ("a", "b", "c")})
    name: str = field(default="x", metadata={"help": "free text"})
    table: dict = field(default_factory=dict)  # no control: kept as is


def test_one_control_per_supported_field(qtbot) -> None:
    form = ConfigForm(Sample())
    qtbot.addWidget(form)
    assert form.field_names == ["ratio", "count", "on", "mode", "name"]
    kinds = {
        "ratio": QDoubleSpinBox,
        "count": QSpinBox,
        "on": QCheckBox,
        "mode": QComboBox,
        "name": QLineEdit,
    }
    for name, kind in kinds.items():
        w = form.control(name)
        assert isinstance(w, kind) and w.objectName() == name
        assert (
            w.toolTip() == dataclasses.fields(Sample)[form.field_names.index(name)].metadata["help"]
        )
    assert (form.control("count").minimum(), form.control("count").maximum()) == (1, 10)
    assert (form.control("ratio").minimum(), form.control("ratio").maximum()) == (0.0, 1.0)
    assert [form.control("mode").itemText(i) for i in range(3)] == ["a", "b", "c"]


def test_value_reflects_edits_and_emits(qtbot) -> None:
    form = ConfigForm(Sample(table={"k": 1}))
    qtbot.addWidget(form)
    with qtbot.waitSignal(form.valueChanged, timeout=1000):
        form.control("ratio").setValue(0.75)
    form.control("count").setValue(9)
    form.control("on").setChecked(False)
    form.control("mode").setCurrentText("c")
    form.control("name").setText("y")  # setText is programmatic: no signal, but read back
    assert form.value() == Sample(ratio=0.75, count=9, on=False, mode="c", name="y", table={"k": 1})


def test_set_value_is_silent(qtbot) -> None:
    form = ConfigForm(Sample())
    qtbot.addWidget(form)
    with qtbot.assertNotEmitted(form.valueChanged):
        form.set_value(Sample(ratio=0.5, count=2, on=False, mode="a"))
    assert form.value() == Sample(ratio=0.5, count=2, on=False, mode="a")


@pytest.mark.parametrize("name", PRESETS)
def test_augment_round_trip_is_exact(qtbot, name: str) -> None:
    """4/3 does not survive 10 decimals; the form must still hand back the very same config."""
    for cfg in (AugmentConfig(), preset(name, 32), preset(name, 224)):
        form = ConfigForm(cfg)
        qtbot.addWidget(form)
        assert form.value() == cfg
        form.set_value(AugmentConfig(crop_ratio_max=4 / 3, hue=1 / 30))
        assert form.value() == AugmentConfig(crop_ratio_max=4 / 3, hue=1 / 30)


def test_every_augment_field_has_a_control(qtbot) -> None:
    form = ConfigForm(AugmentConfig())
    qtbot.addWidget(form)
    assert form.field_names == [f.name for f in dataclasses.fields(AugmentConfig)]


def test_optim_and_run_subset_with_extra_choices(qtbot) -> None:
    optim = ConfigForm(OptimConfig(lr=1e-6, weight_decay=5e-4))
    qtbot.addWidget(optim)
    assert isinstance(optim.control("optimizer"), QComboBox)
    assert optim.value() == OptimConfig(lr=1e-6, weight_decay=5e-4)
    run = ConfigForm(
        RunConfig(),
        include=["backbone", "image_size", "amp"],
        choices={"backbone": ["tiny_cnn", "resnet18"]},
    )
    qtbot.addWidget(run)
    assert run.field_names == ["backbone", "image_size", "amp"]
    run.control("backbone").setCurrentText("tiny_cnn")
    run.control("image_size").setValue(48)
    assert run.value() == dataclasses.replace(RunConfig(), backbone="tiny_cnn", image_size=48)
    with pytest.raises(KeyError):
        ConfigForm(RunConfig(), include=["nope"])


def test_sections_group_rows(qtbot) -> None:
    form = ConfigForm(Sample(), sections=[("Numbers", ["count", "ratio"])])
    qtbot.addWidget(form)
    assert form.field_names == ["count", "ratio", "on", "mode", "name"]


def test_float_text_is_short_and_parses(qtbot) -> None:
    box = FloatSpinBox()
    qtbot.addWidget(box)
    box.setRange(0, 1)
    assert box.textFromValue(5e-4) == "0.0005"
    assert box.textFromValue(1e-6) == "1e-06"
    assert box.valueFromText(" 2.5e-3 ") == pytest.approx(2.5e-3)
    assert field_label("hflip_p") == "Horizontal flip probability"
    assert field_label("crop_scale_min") == "Crop scale (min)"


def test_set_choices_replaces_options_and_keeps_a_known_value(qtbot) -> None:
    form = ConfigForm(Sample())
    qtbot.addWidget(form)
    seen: list[int] = []
    form.valueChanged.connect(lambda: seen.append(1))
    form.set_choices("mode", ["c", "b", "z"])
    assert form.values()["mode"] == "b" and form.control("mode").count() == 3
    form.set_choices("mode", ["x", "y"])
    assert form.values()["mode"] == "x" and not seen  # programmatic: no valueChanged
    with pytest.raises(ValueError):
        form.set_choices("count", [1, 2])
