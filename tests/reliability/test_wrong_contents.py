"""A checkpoint whose files load safely (``weights_only=True``, valid JSON) but hold the wrong
things is as damaged as a truncated one: resume falls back to the older intact checkpoint with
a notice, never a KeyError or ValueError traceback."""

from __future__ import annotations

import json
import threading

import pytest
import torch

from sslstudio.core.events import RunFinished, RunStarted, StepLogged
from sslstudio.core.train import checkpoints as ckpt
from sslstudio.core.train.trainer import train
from tests.shapes import tiny_config


def _state(opt: dict | None = None, **extra) -> dict:
    return {"optimizer": opt if opt is not None else {}, **extra}


GOOD_GROUP = {"params": [0, 1], "lr": 0.1}
STATES = {
    "empty dict": {},
    "a list": [1, 2, 3],
    "a bare tensor": torch.zeros(3),
    "optimizer without groups": _state({"state": {}}),
    "groups not a list": _state({"state": {}, "param_groups": {"a": 1}}),
    "params not a list": _state({"state": {}, "param_groups": [{"params": 3}]}),
    "params of strings": _state({"state": {}, "param_groups": [{"params": ["a"]}]}),
    "state of an unknown parameter": _state(
        {"state": {7: {"momentum_buffer": torch.zeros(2)}}, "param_groups": [GOOD_GROUP]}
    ),
    "rng not bytes": _state(
        {"state": {}, "param_groups": [GOOD_GROUP]}, torch_rng=torch.zeros(5, dtype=torch.float32)
    ),
}
META_EDITS = {
    "step a string": lambda m: m.update(step="four"),
    "step negative": lambda m: m.update(step=-4),
    "plan missing its size": lambda m: m["plan"].pop("batch_size"),
    "plan not a table": lambda m: m.update(plan=[1, 2]),
    "plan with zero batch": lambda m: m["plan"].update(batch_size=0),
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, module_home):
    from tests.shapes import make_shapes_folder

    root = tmp_path_factory.mktemp("wrong")
    folder = make_shapes_folder(root / "imgs", per_class=12, size=24, shapes=("circle", "square"))
    cfg = tiny_config(folder, root / "run", monitor_every=0)
    stop = threading.Event()
    for ev in train(cfg, stop=stop):
        if isinstance(ev, StepLogged) and ev.step == 3:
            stop.set()  # checkpoints of steps 2 and 4
    return cfg, root / "run"


def _resume_from_a_copy(trained, tmp_path, damage) -> list:
    import dataclasses
    import shutil

    cfg, run = trained
    copy = shutil.copytree(run, tmp_path / "run")
    damage(copy / "checkpoints" / "step_0000004")
    return list(train(dataclasses.replace(cfg, out=str(copy)), resume_from=copy))


def _falls_back(events: list) -> None:
    started = next(e for e in events if isinstance(e, RunStarted))
    assert started.start_step == 2, started
    assert any("damaged" in n and "step_0000004" in n for n in started.notices), started.notices
    assert isinstance(events[-1], RunFinished)


@pytest.mark.parametrize("kind", list(STATES))
def test_a_state_pt_with_the_wrong_contents_falls_back_to_the_older_checkpoint(
    trained, tmp_path, kind
):
    events = _resume_from_a_copy(
        trained, tmp_path, lambda ck: torch.save(STATES[kind], ck / "state.pt")
    )
    _falls_back(events)


@pytest.mark.parametrize("kind", list(META_EDITS))
def test_a_meta_json_with_the_wrong_contents_falls_back_too(trained, tmp_path, kind):
    def damage(ck):
        meta = json.loads((ck / "meta.json").read_text())
        META_EDITS[kind](meta)
        (ck / "meta.json").write_text(json.dumps(meta))

    _falls_back(_resume_from_a_copy(trained, tmp_path, damage))


def test_the_older_checkpoint_is_what_the_cli_and_window_offer(trained, tmp_path):
    import shutil

    _, run = trained
    copy = shutil.copytree(run, tmp_path / "run")
    torch.save({}, copy / "checkpoints" / "step_0000004" / "state.pt")
    assert ckpt.resolve(copy)[1].name == "step_0000002"
