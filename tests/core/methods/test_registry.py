"""A method is one file: every file in core/methods/ registers a method that carries its traits."""

from __future__ import annotations

import ast
import dataclasses
import inspect
from pathlib import Path

import pytest

import sslstudio.core.methods as methods_pkg
from sslstudio.core.methods import METHODS, Method
from sslstudio.core.train import distributed
from sslstudio.errors import ConfigError

PKG = Path(methods_pkg.__file__).parent
NOT_METHODS = {"__init__", "base"}
METHOD_FILES = sorted(p.stem for p in PKG.glob("*.py") if p.stem not in NOT_METHODS)


def test_every_method_file_is_imported_by_the_package_and_registers_its_method():
    tree = ast.parse((PKG / "__init__.py").read_text(encoding="utf-8"))
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "sslstudio.core.methods"
        for alias in node.names
    }
    # explicit imports: a packager (PyInstaller) sees only what is imported by name
    assert set(METHOD_FILES) <= imported, set(METHOD_FILES) - imported
    registered = {cls.__module__.rsplit(".", 1)[-1] for cls in METHODS.values()}
    assert registered == set(METHOD_FILES)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_a_registered_method_has_its_traits(name):
    cls = METHODS[name]
    assert issubclass(cls, Method) and cls.name == name
    assert cls.display_name.strip(), "as the paper writes it, for the GUI's list"
    assert len(cls.summary.split()) >= 20, "summary: one plain-language paragraph"
    assert "http" in cls.paper
    assert isinstance(cls.distributed, bool)
    conf = cls.Config()  # every option has a default
    assert dataclasses.is_dataclass(conf)
    with pytest.raises(dataclasses.FrozenInstanceError):
        conf.__setattr__(dataclasses.fields(conf)[0].name, None)
    for f in dataclasses.fields(conf):
        assert f.metadata.get("help"), f"{name}.{f.name} has no help for the GUI form"
    # one call for every method: no flag decides what the trainer passes
    assert list(inspect.signature(cls.training_step).parameters) == ["self", "batch"]
    source = Path(inspect.getfile(cls)).read_text(encoding="utf-8")
    assert len(source.splitlines()) <= 150


def test_display_names_are_unique():
    shown = [cls.display_name for cls in METHODS.values()]
    assert len(set(shown)) == len(shown)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_distributed_refusal_follows_the_class_attribute(name):
    if METHODS[name].distributed:
        distributed.check_method(name)
    else:
        with pytest.raises(ConfigError, match=f"{name} does not train across processes"):
            distributed.check_method(name)
