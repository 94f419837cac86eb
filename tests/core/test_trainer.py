import dataclasses
import json
import math
import threading

import pytest
import torch

from sslstudio.core.events import (
    CheckpointSaved,
    EpochEnded,
    MonitorLogged,
    Preparing,
    RunFailed,
    RunFinished,
    RunStarted,
    RunStopped,
    StepLogged,
)
from sslstudio.core.methods import METHODS
from sslstudio.core.train import checkpoints as ckpt
from sslstudio.core.train.runs import RunLock, RunLockedError, read_metrics
from sslstudio.core.train.trainer import train
from sslstudio.errors import ConfigError, DivergedError, NoUsableImagesError
from tests.shapes import tiny_config


def _steps(events):
    return [e for e in events if isinstance(e, StepLogged)]


def test_event_stream_of_a_whole_run(tiny_folder, tmp_path):
    cfg = tiny_config(
        tiny_folder, tmp_path / "run"
    )  # 24 images, batch 8 -> 3 steps/epoch, 2 epochs
    events = [e for e in train(cfg) if not isinstance(e, Preparing)]
    assert isinstance(events[0], RunStarted) and isinstance(events[-1], RunFinished)
    start = events[0]
    assert start.total_steps == 6 and start.steps_per_epoch == 3 and len(start.lr_schedule) == 6
    steps = _steps(events)
    assert [s.step for s in steps] == list(range(6))
    assert all(
        math.isfinite(s.loss) and s.images_per_s > 0 and 0 <= s.data_wait <= 1 for s in steps
    )
    assert [s.lr for s in steps] == pytest.approx(list(start.lr_schedule))
    assert [e.epoch for e in events if isinstance(e, EpochEnded)] == [0, 1]
    assert [e.step for e in events if isinstance(e, CheckpointSaved)] == [2, 4]
    monitors = [e for e in events if isinstance(e, MonitorLogged)]
    assert [m.step for m in monitors] == [0, 2, 4, 6]
    assert all(m.knn_top1 is not None and 0 <= m.knn_top1 <= 1 for m in monitors)
    run = tmp_path / "run"
    assert json.loads((run / "config.json").read_text())["backbone"] == "tiny_cnn"
    rows = read_metrics(run)
    assert [r["step"] for r in rows if r["kind"] == "step"] == list(range(6))
    assert rows[-1]["kind"] == "finished"
    assert (run / "checkpoints" / "final").is_dir()


def _weights(run):
    return ckpt.load_checkpoint(run / "checkpoints" / "final")[0]


def test_stop_then_resume_equals_uninterrupted(tiny_folder, tmp_path):
    straight = list(train(tiny_config(tiny_folder, tmp_path / "a")))
    stop = threading.Event()
    first = []
    for ev in train(tiny_config(tiny_folder, tmp_path / "b"), stop=stop):
        first.append(ev)
        if isinstance(ev, StepLogged) and ev.step == 2:
            stop.set()  # as the GUI's Stop button does, from outside the loop
    assert isinstance(first[-1], RunStopped) and first[-1].step == 3
    rest = list(train(tiny_config(tiny_folder, tmp_path / "b"), resume_from=tmp_path / "b"))
    assert next(e for e in rest if isinstance(e, RunStarted)).start_step == 3
    losses_b = [s.loss for s in _steps(first) + _steps(rest)]
    assert losses_b == [s.loss for s in _steps(straight)]  # exact, not approximate
    wa, wb = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    logged = [r["step"] for r in read_metrics(tmp_path / "b") if r["kind"] == "step"]
    assert logged == list(range(6))  # no gaps, no duplicates


def test_crash_resumes_from_last_checkpoint_without_duplicate_rows(tiny_folder, tmp_path):
    straight = _steps(list(train(tiny_config(tiny_folder, tmp_path / "a"))))
    gen = train(tiny_config(tiny_folder, tmp_path / "b"))
    for ev in gen:
        if isinstance(ev, StepLogged) and ev.step == 3:
            break  # the process "dies" after step 3 was logged; the checkpoint holds step 2
    gen.close()
    rest = list(train(tiny_config(tiny_folder, tmp_path / "b"), resume_from=tmp_path / "b"))
    assert next(e for e in rest if isinstance(e, RunStarted)).start_step == 2
    assert [s.loss for s in _steps(rest)] == [s.loss for s in straight[2:]]
    logged = [r["step"] for r in read_metrics(tmp_path / "b") if r["kind"] == "step"]
    assert logged == list(range(6))


@pytest.mark.parametrize("poison", [float("nan"), float("inf")], ids=["nan", "inf"])
def test_non_finite_loss_stops_with_step_and_keeps_finite_checkpoint(
    tiny_folder, tmp_path, monkeypatch, poison
):
    """RELIABILITY 23: NaN or Inf at step k stops the run; no non-finite weights are saved."""
    cls = METHODS["simclr"]
    real = cls.training_step
    calls = {"n": 0}

    def poisoned(self, batch):
        loss, extra = real(self, batch)
        calls["n"] += 1
        return (loss * poison if calls["n"] == 4 else loss), extra

    monkeypatch.setattr(cls, "training_step", poisoned)
    events = []
    with pytest.raises(DivergedError, match="diverged at step 3"):
        for ev in train(tiny_config(tiny_folder, tmp_path / "run")):
            events.append(ev)
    failed = events[-1]
    assert (
        isinstance(failed, RunFailed)
        and failed.step == 3
        and failed.last_checkpoint.endswith("step_0000002")
    )
    found, _ = ckpt.latest_good(tmp_path / "run")
    assert found.step == 2
    for p in (tmp_path / "run" / "checkpoints").iterdir():  # every checkpoint, not only the newest
        assert all(
            torch.isfinite(t).all()
            for t in ckpt.load_checkpoint(p)[0].values()
            if t.is_floating_point()
        )
    assert read_metrics(tmp_path / "run")[-1]["kind"] == "failed"


def test_resume_with_another_model_is_refused(tiny_folder, tmp_path):
    list(train(tiny_config(tiny_folder, tmp_path / "run", max_steps=2)))
    other = tiny_config(tiny_folder, tmp_path / "run", backbone="resnet18", image_size=24)
    with pytest.raises(
        ConfigError, match="backbone: checkpoint 'tiny_cnn' vs requested 'resnet18'"
    ):
        next(train(other, resume_from=tmp_path / "run"))


def test_second_process_on_a_run_is_refused(tiny_folder, tmp_path):
    cfg = tiny_config(tiny_folder, tmp_path / "run", max_steps=2)
    list(train(cfg))
    holder = RunLock(tmp_path / "run").acquire()
    try:
        with pytest.raises(RunLockedError, match="another SSL Studio process"):
            # flock is per open file description: a second open in this process conflicts too
            next(train(cfg, resume_from=tmp_path / "run"))
    finally:
        holder.release()


def test_folder_change_is_reported_on_resume(tiny_folder, tmp_path):
    stop = threading.Event()
    for ev in train(tiny_config(tiny_folder, tmp_path / "run"), stop=stop):
        if isinstance(ev, StepLogged):
            stop.set()
    for p in sorted((tiny_folder / "circle").iterdir())[:5]:
        p.unlink()
    events = list(train(tiny_config(tiny_folder, tmp_path / "run"), resume_from=tmp_path / "run"))
    started = next(e for e in events if isinstance(e, RunStarted))
    assert any("folder changed" in n for n in started.notices)
    assert isinstance(events[-1], RunFinished)


def test_empty_folder_is_a_clear_error_before_training(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("hello")
    with pytest.raises(NoUsableImagesError, match="no usable images"):
        list(train(tiny_config(tmp_path / "empty", tmp_path / "run")))


def test_bad_config_refused_before_a_run_folder_exists(tiny_folder, tmp_path):
    cfg = dataclasses.replace(
        tiny_config(tiny_folder, tmp_path / "run"), method_options={"temperature": -1.0}
    )
    with pytest.raises(ConfigError, match="temperature"):
        next(train(cfg))
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_takes_two_finite_steps(name, tiny_folder, tmp_path):
    # a method that needs a ViT (MAE masks its tokens) gets the smallest one; the rest tiny_cnn
    backbone = "vit_tiny" if METHODS[name].requires_backbone_family == "timm-vit" else "tiny_cnn"
    cfg = tiny_config(
        tiny_folder, tmp_path / "run", method=name, max_steps=2, monitor_every=0, backbone=backbone
    )
    losses = [e.loss for e in _steps(list(train(cfg)))]
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses)


def test_preparation_reports_progress_and_stop_there_leaves_no_checkpoint(tiny_folder, tmp_path):
    from sslstudio.core.events import Preparing

    stop = threading.Event()
    events = []
    for ev in train(tiny_config(tiny_folder, tmp_path / "run"), stop=stop):
        events.append(ev)
        if isinstance(ev, Preparing):
            stop.set()  # Stop pressed while the folder is still being read
    assert any(isinstance(e, Preparing) for e in events)
    assert events[-1] == RunStopped(step=0, path="", run_dir=str(tmp_path / "run"))
    assert not (tmp_path / "run" / "checkpoints").exists()
    # and such a run resumes from step 0
    rest = list(train(tiny_config(tiny_folder, tmp_path / "run"), resume_from=tmp_path / "run"))
    assert (
        isinstance(rest[-1], RunFinished)
        and next(e for e in rest if isinstance(e, RunStarted)).start_step == 0
    )


def test_stop_before_the_first_step_saves_nothing(tiny_folder, tmp_path):
    stop = threading.Event()
    events = []
    for ev in train(tiny_config(tiny_folder, tmp_path / "run"), stop=stop):
        events.append(ev)
        if isinstance(ev, RunStarted):
            stop.set()
    assert events[-1] == RunStopped(step=0, path="", run_dir=str(tmp_path / "run"))
    assert not list((tmp_path / "run").glob("checkpoints/step_*"))


def test_training_on_the_torture_folder_finishes_and_reports_every_bad_file(tmp_path):
    """RELIABILITY 1-13 at once: bad files are set aside with reasons, the good ones train."""
    from tests.image_factory import build_torture_folder
    from tests.shapes import make_shapes_folder

    folder = tmp_path / "torture"
    expected = build_torture_folder(folder)
    make_shapes_folder(folder / "good", per_class=6, size=24, shapes=("circle", "square"))
    events = list(train(tiny_config(folder, tmp_path / "run", max_steps=3)))
    started = next(e for e in events if isinstance(e, RunStarted))
    assert isinstance(events[-1], RunFinished)
    bad = sum(1 for reason in expected.values() if reason is not None)
    assert any(f"{bad} file(s) skipped" in n for n in started.notices), started.notices
    assert started.num_images >= 12
