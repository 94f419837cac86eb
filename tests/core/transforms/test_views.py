import dataclasses

import pytest
import torch
import torchvision.transforms.v2.functional as TF

from sslstudio.config import AugmentConfig
from sslstudio.core.transforms import ops
from sslstudio.core.transforms.presets import PRESETS, preset
from sslstudio.core.transforms.views import ViewPipeline, ViewSpec, augment_batch, step_generator

PLAIN = AugmentConfig(
    crop_scale_min=1.0,
    crop_scale_max=1.0,
    crop_ratio_min=1.0,
    crop_ratio_max=1.0,
    hflip_p=0.0,
    jitter_p=0.0,
    grey_p=0.0,
    blur_p=0.0,
)


def _batch(b=16, side=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (b, 3, side, side), dtype=torch.uint8, generator=g)


def test_parameters_are_drawn_per_image_not_per_batch():
    # the same image repeated 16 times must come out as 16 different views
    x = _batch(1).expand(16, -1, -1, -1).contiguous()
    (v,) = ViewPipeline([ViewSpec(preset("natural", 24), 24, 1)])(x, step_generator(0, 0))
    flat = v.flatten(1)
    dists = torch.cdist(flat, flat)
    assert (dists + torch.eye(16) * 1e9).min() > 1e-3


def test_views_depend_only_on_the_seed_and_step():
    x = _batch()
    pipe = ViewPipeline([ViewSpec(preset("histopathology", 24), 24, 2)])
    a = pipe(x, step_generator(3, 7))
    b = pipe(x, step_generator(3, 7))
    c = pipe(x, step_generator(3, 8))
    assert all(torch.equal(p, q) for p, q in zip(a, b))
    assert not torch.equal(a[0], c[0])


def test_identity_settings_return_the_image():
    x = _batch().float() / 255
    out = augment_batch(x, PLAIN, 24, torch.Generator().manual_seed(0))
    assert torch.allclose(out, x, atol=1e-5)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_rot90_matches_torch_rot90(k):
    x = _batch(4).float() / 255
    boxes = torch.tensor([[0.5, 0.5, 1.0, 1.0]] * 4)
    no = torch.zeros(4, dtype=torch.bool)
    out = ops.affine_views(x, boxes, no, no, torch.full((4,), k), 24)
    expected = torch.rot90(x, k, dims=(2, 3))
    assert torch.allclose(out, expected, atol=1e-5)


def test_flips_match_torchvision():
    x = _batch(2).float() / 255
    boxes = torch.tensor([[0.5, 0.5, 1.0, 1.0]] * 2)
    yes, no = torch.ones(2, dtype=torch.bool), torch.zeros(2, dtype=torch.bool)
    zero = torch.zeros(2, dtype=torch.long)
    assert torch.allclose(
        ops.affine_views(x, boxes, yes, no, zero, 24), TF.horizontal_flip(x), atol=1e-5
    )
    assert torch.allclose(
        ops.affine_views(x, boxes, no, yes, zero, 24), TF.vertical_flip(x), atol=1e-5
    )


def test_crop_box_selects_the_right_region():
    # an exact 2x upsampling crop of the top-left quadrant equals nearest-neighbour-free resize of
    # it
    x = torch.zeros(1, 3, 16, 16)
    x[..., :8, :8] = 1.0
    boxes = torch.tensor([[0.25, 0.25, 0.5, 0.5]])
    no = torch.zeros(1, dtype=torch.bool)
    out = ops.affine_views(x, boxes, no, no, torch.zeros(1, dtype=torch.long), 8)
    assert out.min() > 0.99


def test_colour_ops_match_torchvision_per_image():
    x = _batch(3).float() / 255
    f = torch.tensor([0.5, 1.0, 1.7])
    for ours, theirs in [
        (ops.adjust_brightness, TF.adjust_brightness),
        (ops.adjust_contrast, TF.adjust_contrast),
        (ops.adjust_saturation, TF.adjust_saturation),
    ]:
        out = ours(x.clone(), f)
        for i in range(3):
            assert torch.allclose(out[i], theirs(x[i], float(f[i])), atol=1e-4), ours.__name__
    h = torch.tensor([-0.3, 0.0, 0.2])
    out = ops.adjust_hue(x.clone(), h)
    for i in range(3):
        assert torch.allclose(out[i], TF.adjust_hue(x[i], float(h[i])), atol=1e-3)
    # the corner cases of the closed form: grey, black, white, primaries, ties, half turns
    special = torch.tensor(
        [
            [0, 0, 0],
            [1, 1, 1],
            [0.5, 0.5, 0.5],
            [1, 0, 0],
            [0, 1, 0],
            [0, 0, 1],
            [1, 1, 0],
            [0, 1, 1],
            [1, 0, 1],
            [0.2, 0.2, 0.9],
            [0.9, 0.2, 0.2],
            [0.3, 0.6, 0.6],
        ]
    )
    img = special.T.reshape(1, 3, 3, 4).expand(4, -1, -1, -1).contiguous()
    h = torch.tensor([-0.5, 0.5, 0.25, -1 / 6])
    out = ops.adjust_hue(img.clone(), h)
    for i in range(4):
        assert torch.allclose(out[i], TF.adjust_hue(img[i], float(h[i])), atol=1e-5)


def test_blur_per_image_sigma():
    x = _batch(2, side=32).float() / 255
    out = ops.gaussian_blur(x, torch.tensor([0.0, 1.5]))
    assert torch.allclose(out[0], x[0], atol=1e-6)  # sigma 0: untouched
    ref = TF.gaussian_blur(x[1], kernel_size=[11, 11], sigma=[1.5, 1.5])
    assert torch.allclose(out[1, :, 6:-6, 6:-6], ref[:, 6:-6, 6:-6], atol=2e-3)


def test_hed_identity_and_change():
    x = _batch(2).float() / 255 * 0.9 + 0.05
    same = ops.hed_jitter(x, torch.ones(2, 3), torch.zeros(2, 3))
    assert torch.allclose(same, x, atol=1e-4)
    moved = ops.hed_jitter(x, torch.full((2, 3), 1.2), torch.zeros(2, 3))
    assert (moved - x).abs().mean() > 0.01


def test_constraints_are_enforced():
    pipe = ViewPipeline(
        [ViewSpec(preset("histopathology", 32), 32, 2)], constraints={"rot90_p": 0.0}
    )
    assert all(s.augment.rot90_p == 0.0 for s in pipe.specs)


@pytest.mark.parametrize("name", PRESETS)
@pytest.mark.parametrize("size", [16, 96])
def test_presets_make_finite_views_of_the_right_shape(name, size):
    a = preset(name, size)
    assert dataclasses.is_dataclass(a)
    views = ViewPipeline([ViewSpec(a, size, 2)])(_batch(4, side=size + 8), step_generator(0, 1))
    assert len(views) == 2 and views[0].shape == (4, 3, size, size)
    assert all(torch.isfinite(v).all() for v in views)


def test_histopathology_has_no_greyscale_and_uses_rotations():
    h = preset("histopathology", 64)
    assert h.grey_p == 0 and h.rot90_p > 0 and h.vflip_p > 0 and h.hed_p > 0
    n = preset("natural", 32)
    assert n.blur_p == 0 and n.brightness == pytest.approx(
        0.4
    )  # CIFAR variant: strength 0.5, no blur
    assert preset("natural", 224).blur_p == 0.5


def test_unknown_preset():
    with pytest.raises(ValueError, match="unknown augmentation preset"):
        preset("paintings", 32)


def test_hed_jitter_scales_and_shifts_each_stain_exactly():
    # H&E-like pixels well inside (0, 1), so no clamp touches them on either side
    x = torch.tensor([[0.55, 0.35, 0.6], [0.8, 0.5, 0.7], [0.65, 0.6, 0.75]]).T.reshape(1, 3, 1, 3)
    alpha, beta = torch.tensor([[1.1, 0.9, 1.0]]), torch.tensor([[0.02, -0.03, 0.0]])
    out = ops.hed_jitter(x.double(), alpha, beta)
    m_in = torch.tensor(ops._HED_FROM_RGB, dtype=torch.float64)

    def stains(img):
        od = -img.reshape(3, -1).T.log()  # (pixels, RGB) optical density
        return od @ m_in  # (pixels, H E D)

    assert torch.allclose(stains(out), stains(x.double()) * alpha + beta, atol=1e-9)
