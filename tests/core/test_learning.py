"""Does training learn? Shape decides the class, colour is nuisance: random features see colour,
SimCLR's colour jitter and greyscale teach the network to ignore it and see the shape."""

import dataclasses

import pytest

from sslstudio.core.embed import knn_eval, load_method, random_init_method
from sslstudio.core.events import RunFinished
from sslstudio.core.trainer import train
from tests.shapes import make_shapes_folder, tiny_config

MARGIN = 0.15


@pytest.mark.slow
def test_simclr_beats_random_init_by_a_clear_margin(tmp_path):
    train_dir = make_shapes_folder(tmp_path / "train", per_class=120, size=20, seed=1)
    val_dir = make_shapes_folder(tmp_path / "val", per_class=40, size=20, seed=2)
    cfg = dataclasses.replace(
        tiny_config(train_dir, tmp_path / "run"), image_size=16, batch_size=64, epochs=40,
        monitor_every=0, checkpoint_every=10**6, threads=2,
    )
    events = list(train(cfg))
    assert isinstance(events[-1], RunFinished)
    method, _, _ = load_method(tmp_path / "run")
    trained = knn_eval(method, train_dir, val_dir, 16, k=20)
    random = knn_eval(random_init_method(cfg), train_dir, val_dir, 16, k=20)
    assert trained > random + MARGIN, f"trained {trained:.3f} vs random init {random:.3f}"
