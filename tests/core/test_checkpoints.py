import errno
import os

import pytest
import torch

from sslstudio.core.train import checkpoints as ckpt
from sslstudio.errors import CheckpointError


def _save(run, name, step, value=1.0):
    return ckpt.save_checkpoint(
        run, name, {"w": torch.full((3,), value)}, _TRAIN_STATE, {"step": step}
    )


# the shape of an optimizer's state_dict: a state.pt without it counts as damaged
_TRAIN_STATE = {"optimizer": {"state": {}, "param_groups": [{"params": [0], "lr": 0.1}]}}


def test_round_trip_and_newest_first(tmp_path):
    _save(tmp_path, "step_0000002", 2, 2.0)
    _save(tmp_path, "step_0000004", 4, 4.0)
    found, damaged = ckpt.latest_good(tmp_path)
    assert found.step == 4 and not damaged
    model, state, meta = ckpt.load_checkpoint(found.path)
    assert torch.equal(model["w"], torch.full((3,), 4.0))
    assert (
        state["optimizer"]["param_groups"][0]["lr"] == 0.1
        and meta["format_version"] == ckpt.FORMAT_VERSION
    )


@pytest.mark.parametrize("damage", ["truncate", "empty", "random", "delete_meta"])
def test_damaged_newest_falls_back_to_previous(tmp_path, damage):
    _save(tmp_path, "step_0000002", 2)
    newest = _save(tmp_path, "step_0000004", 4)
    target = newest / "model.safetensors"
    if damage == "truncate":
        target.write_bytes(target.read_bytes()[:20])
    elif damage == "empty":
        target.write_bytes(b"")
    elif damage == "random":
        (newest / "state.pt").write_bytes(os.urandom(300))
    else:
        (newest / "meta.json").unlink()
    found, damaged = ckpt.latest_good(tmp_path)
    assert found.step == 2
    assert damaged and "damaged" in damaged[0]


def test_failed_save_leaves_previous_intact_and_no_temp(tmp_path, monkeypatch):
    _save(tmp_path, "step_0000002", 2)
    real = torch.save

    def disk_full(obj, f, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(
        CheckpointError, match="No space left on device.*previous checkpoint is intact"
    ):
        _save(tmp_path, "step_0000004", 4)
    monkeypatch.setattr(torch, "save", real)
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["step_0000002"]
    assert ckpt.latest_good(tmp_path)[0].step == 2


def test_read_only_folder_is_a_clear_error(tmp_path, monkeypatch):
    def denied(*a, **k):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(ckpt.tempfile, "mkdtemp", denied)
    with pytest.raises(CheckpointError, match="Permission denied"):
        _save(tmp_path, "step_0000002", 2)


def test_stray_temp_folders_are_cleaned_and_ignored(tmp_path):
    _save(tmp_path, "step_0000002", 2)
    (tmp_path / "checkpoints" / ".tmp-step_0000004-abc").mkdir()
    assert ckpt.latest_good(tmp_path)[0].step == 2
    assert ckpt.clean_stray(tmp_path) == 1
    assert not list((tmp_path / "checkpoints").glob(".tmp-*"))


def test_resave_same_name_and_prune(tmp_path):
    _save(tmp_path, "final", 9, 1.0)
    _save(tmp_path, "final", 9, 5.0)
    assert torch.equal(
        ckpt.load_checkpoint(tmp_path / "checkpoints" / "final")[0]["w"], torch.full((3,), 5.0)
    )
    for s in range(1, 6):
        _save(tmp_path, f"step_{s:07d}", s)
    ckpt.prune(tmp_path, keep=2)
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["final", "step_0000004", "step_0000005"]


def test_state_file_is_never_unpickled(tmp_path):
    """A checkpoint whose state.pt carries a pickled object is refused, and the payload never
    runs."""
    path = _save(tmp_path, "step_0000002", 2)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    torch.save({"x": Evil()}, path / "state.pt")
    with pytest.raises(CheckpointError, match="damaged"):
        ckpt.load_checkpoint(path)
    assert not marker.exists()
