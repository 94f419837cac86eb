import torch

from sslstudio.config import AugmentConfig, RunConfig
from sslstudio.core.transforms.multicrop import by_resolution, local_view_size, multicrop_specs


def test_two_global_then_local_views():
    cfg = RunConfig(image_size=224, augment=AugmentConfig(crop_scale_min=0.08))
    specs = multicrop_specs(cfg, 6, size_ratio=0.43, local_scale_max=0.4, global_scale_min=0.4)
    glob, local = specs
    assert (glob.count, glob.size, glob.augment.crop_scale_min) == (2, 224, 0.4)
    assert (local.count, local.size) == (6, 96)  # DINO's 96 px local crops at 224
    assert (local.augment.crop_scale_min, local.augment.crop_scale_max) == (0.05, 0.4)
    assert local_view_size(16, 0.45) == 8  # never below 8 px
    assert len(multicrop_specs(cfg, 0, size_ratio=0.43, local_scale_max=0.4)) == 1


def test_views_of_one_size_share_a_batched_call():
    calls = []

    def fn(x):
        calls.append(x.shape[0])
        return x.mean(dim=(1, 2, 3))[:, None]

    views = [torch.randn(4, 3, 16, 16)] * 2 + [torch.randn(4, 3, 8, 8)] * 3
    out = by_resolution(fn, views)
    assert calls == [8, 12] and len(out) == 5
    assert all(torch.allclose(o[:, 0], v.mean(dim=(1, 2, 3))) for o, v in zip(out, views))
