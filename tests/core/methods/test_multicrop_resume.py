"""Methods with state beyond weights (teachers, centres, prototypes, memory banks, pseudo-labels)
resume exactly: stopping and resuming equals an uninterrupted run, bit for bit."""

import threading

import pytest
import torch

from sslstudio.core.events import RunStarted, RunStopped, StepLogged
from sslstudio.core.train import checkpoints as ckpt
from sslstudio.core.train.trainer import train
from tests.shapes import tiny_config


def _losses(events):
    return [e.loss for e in events if isinstance(e, StepLogged)]


# 24 images, batch 8: 3 steps an epoch, 6 in all; the stop after step 2 resumes at step 3, where
# SwAV's prototypes unfreeze and DeepCluster runs its first clustering round
@pytest.mark.parametrize("name", ["dino", "swav", "deepcluster"])
def test_stop_then_resume_equals_uninterrupted(name, tiny_folder, tmp_path):
    def cfg(out):
        return tiny_config(tiny_folder, tmp_path / out, method=name, monitor_every=0)

    straight = list(train(cfg("a")))
    stop = threading.Event()
    first = []
    for ev in train(cfg("b"), stop=stop):
        first.append(ev)
        if isinstance(ev, StepLogged) and ev.step == 2:
            stop.set()
    assert isinstance(first[-1], RunStopped) and first[-1].step == 3
    rest = list(train(cfg("b"), resume_from=tmp_path / "b"))
    assert next(e for e in rest if isinstance(e, RunStarted)).start_step == 3
    assert _losses(first) + _losses(rest) == _losses(straight)  # exact, not approximate
    wa = ckpt.load_checkpoint(tmp_path / "a" / "checkpoints" / "final")[0]
    wb = ckpt.load_checkpoint(tmp_path / "b" / "checkpoints" / "final")[0]
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
