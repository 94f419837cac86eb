"""A form generated from a frozen config dataclass: one control per field, read back with replace().

float -> spin box for decimals, int -> spin box, bool -> check box, a field with ``choices``
(metadata, or given to the form), a ``Literal[...]`` or an ``Enum`` -> combo box (reading back
the typed option, not its text), other str -> line edit. Other types (tuples, nested configs)
get no control and keep their value. ``metadata["help"]``
becomes the tooltip and ``min``/``max`` the range. The field name is each control's
``objectName`` (glue's convention), so tests and style sheets can find it.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import typing
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtGui import QValidator
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QWidget,
)

INT_MIN, INT_MAX = -(2**31), 2**31 - 1  # QSpinBox holds a C int
_DECIMALS = 10
_WORDS = {
    "p": "probability",
    "lr": "LR",
    "hflip": "horizontal flip",
    "vflip": "vertical flip",
    "rot90": "90° rotation",
    "hed": "HED stain",
    "proj": "projection",
    "std": "std",
    "knn": "kNN",
    "amp": "mixed precision",
}


def field_label(name: str) -> str:
    """``hflip_p`` -> 'Horizontal flip probability'; ``crop_scale_min`` -> 'Crop scale (min)'."""
    words = name.split("_")
    if len(words) > 1 and words[-1] in ("min", "max"):
        words[-1] = f"({words[-1]})"
    text = " ".join(_WORDS.get(w, w) for w in words)
    return text[:1].upper() + text[1:]


class FloatSpinBox(QDoubleSpinBox):
    """Shows the shortest text that round-trips (0.06, 5e-04), not a fixed number of decimals."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setDecimals(_DECIMALS)

    def textFromValue(self, value: float) -> str:  # noqa: N802 (Qt override)
        return f"{value:.6g}"

    def valueFromText(self, text: str) -> float:  # noqa: N802
        try:
            return float(text.strip())
        except ValueError:
            return self.value()

    def validate(self, text: str, pos: int) -> object:
        stripped = text.strip()
        try:
            value = float(stripped)
        except ValueError:
            # partial input such as "", "-", "1e" must stay editable
            ok = stripped in ("", "-", "+", ".") or stripped[-1:] in ("e", "E", "-", "+", ".")
            return (QValidator.State.Intermediate if ok else QValidator.State.Invalid), text, pos
        if self.minimum() <= value <= self.maximum():
            return QValidator.State.Acceptable, text, pos
        return QValidator.State.Intermediate, text, pos


class ConfigForm(QWidget):
    """Controls for the fields of ``config`` (an instance of a frozen dataclass).

    Args:
        config: the starting values; :meth:`value` returns ``dataclasses.replace(config, ...)``.
        include: only these fields, in this order (default: every supported field).
        exclude: fields to leave out.
        choices: extra choice lists by field name (e.g. the backbone registry).
        labels: label text by field name (default: :func:`field_label`).
        sections: ``[(title, field names), ...]``: rows grouped under section titles, in this
            order; fields named in no section follow under "Other".
    """

    valueChanged = Signal()  # any control changed by the user (not by set_value)

    def __init__(
        self,
        config: Any,
        *,
        include: Sequence[str] | None = None,
        exclude: Iterable[str] = (),
        choices: Mapping[str, Sequence[str]] | None = None,
        labels: Mapping[str, str] | None = None,
        sections: Sequence[tuple[str, Sequence[str]]] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        if not dataclasses.is_dataclass(config) or isinstance(config, type):
            raise TypeError(f"ConfigForm needs a dataclass instance, got {config!r}")
        self._base = config
        self._hints = typing.get_type_hints(type(config))
        self._fields = {f.name: f for f in dataclasses.fields(config)}
        self._choices = dict(choices or {})
        self._controls: dict[str, QWidget] = {}
        self._exact: dict[str, float] = {}  # values a spin box would round (4/3 at 10 decimals)
        self._options: dict[str, list[Any]] = {}  # a combo's typed options, by field name
        self._updating = False
        layout = QFormLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        layout.setHorizontalSpacing(14)
        layout.setVerticalSpacing(6)
        skip = set(exclude)
        names = list(include) if include is not None else list(self._fields)
        section_of: dict[str, str] = {}
        if sections is not None:
            grouped = [n for _, group in sections for n in group if n in names]
            rest = [n for n in names if n not in grouped]
            for title, group in [*sections, ("Other", rest)]:
                section_of.update({n: title for n in group})
            names = grouped + rest
        shown_section = None
        for name in names:
            if name in skip:
                continue
            if name not in self._fields:
                raise KeyError(f"{type(config).__name__} has no field {name!r}")
            control = self._make_control(name)
            if control is None:
                continue
            if section_of.get(name, shown_section) != shown_section:
                shown_section = section_of[name]
                header = QLabel(shown_section)
                header.setObjectName("formSection")
                layout.addRow(header)
            help_text = self._fields[name].metadata.get("help", "")
            label = QLabel((labels or {}).get(name, field_label(name)))
            for w in (label, control):
                w.setToolTip(help_text)
            label.setBuddy(control)
            layout.addRow(label, control)
            self._controls[name] = control
        self.set_value(config)

    @property
    def field_names(self) -> list[str]:
        return list(self._controls)

    def control(self, name: str) -> QWidget:
        return self._controls[name]

    def set_choices(self, name: str, options: Sequence[Any]) -> None:
        """Replace a combo box's options (e.g. the backbone registry, once loaded), keeping the
        current value when it is among them (else the first option). Emits no ``valueChanged``."""
        w = self._controls[name]
        if not isinstance(w, QComboBox) or not options:
            raise ValueError(f"{name!r} is not a choice field, or no options were given")
        current = self.values()[name]
        self._updating = True
        try:
            self._options[name] = list(options)
            w.clear()
            w.addItems([_option_text(o) for o in options])
            w.setCurrentIndex(
                self._options[name].index(current) if current in self._options[name] else 0
            )
        finally:
            self._updating = False

    def _make_control(self, name: str) -> QWidget | None:
        tp = self._hints[name]
        meta = self._fields[name].metadata
        options = self._choices.get(name, meta.get("choices"))
        if options is None and typing.get_origin(tp) is typing.Literal:
            options = typing.get_args(tp)
        elif options is None and isinstance(tp, type) and issubclass(tp, enum.Enum):
            options = list(tp)
        if options is not None:
            w: QWidget = QComboBox()
            self._options[name] = list(options)
            w.addItems([_option_text(o) for o in options])
            w.currentIndexChanged.connect(self._on_changed)
        elif tp is bool:
            w = QCheckBox()
            w.toggled.connect(self._on_changed)
        elif tp is int:
            w = QSpinBox()
            w.setRange(
                max(INT_MIN, int(meta.get("min", INT_MIN))),
                min(INT_MAX, int(meta.get("max", INT_MAX))),
            )
            w.setAccelerated(True)
            w.valueChanged.connect(self._on_changed)
        elif tp is float:
            w = FloatSpinBox()
            lo, hi = float(meta.get("min", -1e9)), float(meta.get("max", 1e9))
            w.setRange(lo, hi)
            if hi - lo <= 1.0:
                w.setSingleStep(0.05)
            else:
                w.setStepType(QAbstractSpinBox.StepType.AdaptiveDecimalStepType)
            w.valueChanged.connect(self._on_changed)
        elif tp is str:
            w = QLineEdit()
            w.textEdited.connect(self._on_changed)
        else:
            return None  # nested configs and dicts get their own forms
        w.setObjectName(name)
        return w

    def set_value(self, config: Any) -> None:
        """Show ``config``'s values; emits no ``valueChanged`` (a programmatic change)."""
        self._base = config
        self._updating = True
        try:
            for name, w in self._controls.items():
                v = getattr(config, name)
                if isinstance(w, QComboBox):
                    options = self._options[name]
                    i = next(
                        (k for k, o in enumerate(options) if o == v or _option_text(o) == str(v)),
                        -1,
                    )
                    if i < 0:  # a value the list lacks (a saved run's backbone): show it anyway
                        options.append(v)
                        w.addItem(_option_text(v))
                        i = w.count() - 1
                    w.setCurrentIndex(i)
                elif isinstance(w, QCheckBox):
                    w.setChecked(bool(v))
                elif isinstance(w, QSpinBox):
                    w.setValue(int(v))
                elif isinstance(w, QDoubleSpinBox):
                    w.setValue(float(v))
                    self._exact[name] = float(v)
                elif isinstance(w, QLineEdit):
                    w.setText(str(v))
        finally:
            self._updating = False

    def values(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, w in self._controls.items():
            if isinstance(w, QComboBox):
                options, i = self._options[name], w.currentIndex()
                out[name] = options[i] if 0 <= i < len(options) else w.currentText()
            elif isinstance(w, QCheckBox):
                out[name] = w.isChecked()
            elif isinstance(w, QSpinBox):
                out[name] = w.value()
            elif isinstance(w, QDoubleSpinBox):
                v, exact = w.value(), self._exact.get(name)
                same = exact is not None and math.isclose(
                    v, round(exact, _DECIMALS), rel_tol=0, abs_tol=1e-12
                )
                out[name] = exact if same else v
            elif isinstance(w, QLineEdit):
                out[name] = w.text()
        return out

    def value(self) -> Any:
        """The dataclass with the form's values (fields without a control keep theirs)."""
        return dataclasses.replace(self._base, **self.values())

    def _on_changed(self, *_: object) -> None:
        if not self._updating:
            self.valueChanged.emit()


def _option_text(option: Any) -> str:
    return str(option.value) if isinstance(option, enum.Enum) else str(option)
