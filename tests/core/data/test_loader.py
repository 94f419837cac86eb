import numpy as np
import torch

from sslstudio.core.data.cache import build_cache
from sslstudio.core.data.loader import BatchLoader, epoch_order
from sslstudio.core.data.scan import scan_folder
from sslstudio.core.transforms import ops


def _data(folder, tmp_path):
    return build_cache(scan_folder(folder, verify=False), 16, tmp_path / "c")


def test_prefetching_changes_no_batch_and_follows_the_epoch_order(tiny_folder, tmp_path):
    data = _data(tiny_folder, tmp_path)
    plain = BatchLoader(data, seed=3, batch_size=5, steps_per_epoch=4, prefetch=False)
    ahead = BatchLoader(data, seed=3, batch_size=5, steps_per_epoch=4)
    try:
        # 0..9 in order, then a jump back (resume from an earlier checkpoint) and on
        for step in [*range(10), 2, 3, 9]:
            i0, b0 = plain.get(step)
            i1, b1 = ahead.get(step)
            assert np.array_equal(i0, i1) and torch.equal(b0, b1)
            epoch, pos = divmod(step, 4)
            assert np.array_equal(i1, epoch_order(3, epoch, 24)[pos * 5 : pos * 5 + 5])
            assert b1.shape == (5, 3, 16, 16) and b1.dtype == torch.uint8
            assert torch.equal(b1[0].permute(1, 2, 0), torch.from_numpy(data.batch(i1[:1])[0]))
    finally:
        ahead.close()
        plain.close()
    assert ahead._pool is None


def test_epochs_are_different_permutations_of_every_image():
    a, b = epoch_order(0, 0, 50), epoch_order(0, 1, 50)
    assert sorted(a) == sorted(b) == list(range(50)) and not np.array_equal(a, b)
    assert np.array_equal(a, epoch_order(0, 0, 50))


def test_parameters_move_packed_and_come_back_with_their_shapes_and_types():
    params = {
        "boxes": torch.rand(4, 4),
        "flip": torch.tensor([True, False, True, False]),
        "rot": torch.tensor([0, 1, 2, 3]),
        "alpha": torch.rand(4, 3),
    }
    assert ops.to_device(params, torch.device("cpu")) is params  # CPU: nothing to do
    moved = ops.to_device(params, torch.device("meta"))
    for name, t in params.items():
        assert moved[name].device.type == "meta"
        assert moved[name].shape == t.shape and moved[name].dtype == t.dtype


def test_constants_are_made_once_per_device_and_type():
    a = ops.constant((1.0, 2.0), torch.device("cpu"), torch.float32)
    assert a is ops.constant((1.0, 2.0), torch.device("cpu"), torch.float32)
    assert a.tolist() == [1.0, 2.0] and a.dtype == torch.float32
