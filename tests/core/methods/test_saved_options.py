"""Saved runs keep their meaning: each method's options keep their names, order and defaults.

``data/method_options_v1.json`` is every method's options as the studio wrote them before the
configs shared their fields (order as the GUI's form shows them, with defaults), and
``data/config_v1_byol.json`` a config.json saved then. A default changed on purpose changes
what every saved config.json that left it unset means: update the file with the change.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from sslstudio.config import RunConfig
from sslstudio.core.methods import METHODS, method_config

DATA = Path(__file__).parent / "data"
SAVED = json.loads((DATA / "method_options_v1.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("name", sorted(SAVED))
def test_options_keep_their_order_and_defaults(name):
    fields = dataclasses.fields(METHODS[name].Config)
    assert [[f.name, f.default] for f in fields] == SAVED[name]
    assert method_config(name, dict(SAVED[name])) == METHODS[name].Config()


def test_every_method_is_in_the_saved_list():
    assert set(METHODS) == set(SAVED)


def test_a_config_json_saved_before_loads_with_its_method_options():
    cfg = RunConfig.load(DATA / "config_v1_byol.json")
    conf = method_config(cfg.method, cfg.method_options)
    assert (conf.proj_hidden, conf.proj_out, conf.momentum_base) == (1024, 256, 0.996)
    assert conf.momentum_final == 1.0
