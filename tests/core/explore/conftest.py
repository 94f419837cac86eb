"""A tiny trained run over a generated two-class folder, shared by the explore tests."""

from pathlib import Path

import pytest

from tests.shapes import make_shapes_folder, tiny_config


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, module_home) -> Path:
    from sslstudio.core.train.trainer import train

    base = tmp_path_factory.mktemp("explore")
    folder = make_shapes_folder(base / "shapes", per_class=10, size=24, shapes=("circle", "square"))
    cfg = tiny_config(folder, base / "run", max_steps=4, monitor_every=0)
    for _ in train(cfg):
        pass
    return base / "run"
