import pytest
import torch

from sslstudio.core.losses.mae import MAELoss, patchify, random_masking


def test_masking_hides_exactly_the_ratio():
    noise = torch.rand(5, 64, generator=torch.Generator().manual_seed(0))
    ids_keep, mask = random_masking(noise, 0.75)
    assert ids_keep.shape == (5, 16)
    assert (mask.sum(dim=1) == 48).all()  # 75 % of 64 hidden in every image
    assert (mask.gather(1, ids_keep) == 0).all()  # kept patches are the visible ones
    assert len({tuple(r.tolist()) for r in mask}) == 5  # each image its own mask


def test_loss_counts_hidden_patches_only():
    torch.manual_seed(0)
    pred, target = torch.randn(2, 8, 12), torch.randn(2, 8, 12)
    mask = torch.zeros(2, 8)
    mask[:, :6] = 1
    loss = MAELoss(norm_pix=False)
    base = loss(pred, target, mask)
    changed_visible = pred.clone()
    changed_visible[:, 6:] += 10
    assert loss(changed_visible, target, mask).item() == pytest.approx(base.item())
    changed_hidden = pred.clone()
    changed_hidden[:, :2] += 10
    assert loss(changed_hidden, target, mask).item() > base.item() + 1
    assert base.item() == pytest.approx(((pred - target) ** 2).mean(-1)[:, :6].mean().item())


def test_normalised_pixel_target_ignores_each_patch_brightness():
    torch.manual_seed(0)
    target = torch.randn(1, 4, 12)
    pred = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6).sqrt()
    assert MAELoss(norm_pix=True)(pred, target * 3 + 5, torch.ones(1, 4)).item() < 1e-6


def test_patchify_is_row_major():
    img = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    p = patchify(img, 4)  # (2, 4, 48)
    assert p.shape == (2, 4, 48)
    # patch 1 = top-right block; its first value is channel 0 at (0, 4)
    assert p[0, 1].view(4, 4, 3)[0, 0, 0] == img[0, 0, 0, 4]
    assert torch.equal(p[1, 2].view(4, 4, 3).permute(2, 0, 1), img[1, :, 4:, :4])


def test_bad_hyper_parameters_are_refused():
    with pytest.raises(ValueError):
        random_masking(torch.rand(1, 4), 1.0)
    with pytest.raises(ValueError):
        MAELoss(eps=0)
