"""Methods with momentum encoders and queues resume exactly: stopping and resuming equals an
uninterrupted run, bit for bit, including the logged momentum."""

import threading

import pytest
import torch

from sslstudio.core.events import RunStarted, RunStopped, StepLogged
from sslstudio.core.train import checkpoints as ckpt
from sslstudio.core.train.trainer import train
from tests.shapes import tiny_config


def _steps(events):
    return [(e.loss, e.extra) for e in events if isinstance(e, StepLogged)]


# 24 images, batch 8: 3 steps an epoch, 6 in all; queues are capped at 12 rows, so they wrap
# round on the second step and again after the resume
@pytest.mark.parametrize("name", ["moco", "mocov3", "nnclr", "byol"])
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
    assert _steps(first) + _steps(rest) == _steps(straight)  # exact, not approximate
    wa = ckpt.load_checkpoint(tmp_path / "a" / "checkpoints" / "final")[0]
    wb = ckpt.load_checkpoint(tmp_path / "b" / "checkpoints" / "final")[0]
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.parametrize("name", ["moco", "nnclr", "swav"])
def test_resume_after_the_folder_grew(name, tiny_folder, tmp_path):
    """Queues capped by the folder's size load as saved; the run goes on over the new folder."""
    from PIL import Image

    from sslstudio.core.events import RunFinished

    cfg = tiny_config(tiny_folder, tmp_path / "r", method=name, monitor_every=0)
    stop = threading.Event()
    for ev in train(cfg, stop=stop):
        if isinstance(ev, StepLogged) and ev.step == 1:
            stop.set()
    for i in range(16):
        Image.new("RGB", (24, 24), (i * 15, 90, 40)).save(tiny_folder / "square" / f"new{i}.png")
    rest = list(train(cfg, resume_from=tmp_path / "r"))
    assert isinstance(rest[-1], RunFinished), rest[-1]
    assert next(e for e in rest if isinstance(e, RunStarted)).num_images == 40
