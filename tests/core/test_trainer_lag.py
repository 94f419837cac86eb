"""Reading each step's loss one step late (the GPU overlap) changes no number and no event."""

import threading

import pytest
from safetensors.torch import load_file

from sslstudio.core.events import EpochEnded, RunStopped, StepLogged
from sslstudio.core.train import trainer
from tests.shapes import tiny_config


def _run(cfg, stop_after=None):
    stop = threading.Event()
    events = []
    for ev in trainer.train(cfg, stop=stop):
        events.append(ev)
        if stop_after is not None and isinstance(ev, StepLogged) and ev.step == stop_after:
            stop.set()
    return events


def _shape(events):
    return [
        (type(e).__name__, getattr(e, "step", None))
        for e in events
        if type(e).__name__ != "Preparing"
    ]


@pytest.mark.parametrize("stop_after", [None, 3])
def test_lagged_loss_reads_give_the_same_run(tiny_folder, tmp_path, monkeypatch, stop_after):
    cfg = dict(max_steps=5, checkpoint_every=4, monitor_every=3)
    plain = _run(tiny_config(tiny_folder, tmp_path / "a", **cfg), stop_after)
    monkeypatch.setattr(trainer, "settle_lag", lambda device: 1)
    lagged = _run(tiny_config(tiny_folder, tmp_path / "b", **cfg), stop_after)

    def steps(evs):
        return [(e.step, e.loss, e.lr, e.samples_seen) for e in evs if isinstance(e, StepLogged)]

    assert steps(lagged) == steps(plain) and len(steps(plain)) == (5 if stop_after is None else 4)
    assert [e.mean_loss for e in lagged if isinstance(e, EpochEnded)] == [
        e.mean_loss for e in plain if isinstance(e, EpochEnded)
    ]
    if stop_after is None:
        # every event in the same order (a monitor row, an epoch end, a checkpoint never overtakes
        # the step it follows), and the same final weights
        strip = [x for x in _shape(plain) if x[0] != "RunStarted"]
        assert [x for x in _shape(lagged) if x[0] != "RunStarted"] == strip
        a = load_file(str(tmp_path / "a" / "checkpoints" / "final" / "model.safetensors"))
        b = load_file(str(tmp_path / "b" / "checkpoints" / "final" / "model.safetensors"))
        assert all((a[k] == b[k]).all() for k in a)
    else:
        # a stop may land one step later with the lag (that step was already queued), never lose one
        s_plain = next(e for e in plain if isinstance(e, RunStopped)).step
        s_lag = next(e for e in lagged if isinstance(e, RunStopped)).step
        assert s_lag in (s_plain, s_plain + 1)
        assert max(e.step for e in lagged if isinstance(e, StepLogged)) == s_lag - 1
