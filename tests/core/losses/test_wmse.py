import pytest
import torch
import torch.nn.functional as F

from sslstudio.core.losses.wmse import WMSELoss, whiten


def test_whitened_output_has_zero_mean_and_identity_covariance():
    torch.manual_seed(0)
    mix = torch.randn(5, 5)
    x = torch.randn(40, 5) @ mix + 3.0  # correlated, shifted
    w = whiten(x)
    cov = w.T @ w / (w.shape[0] - 1)  # (5, 5)
    assert torch.allclose(w.mean(dim=0), torch.zeros(5), atol=1e-5)
    assert torch.allclose(cov, torch.eye(5), atol=1e-4)


def test_shrinkage_keeps_small_groups_finite():
    torch.manual_seed(1)
    w = whiten(torch.randn(4, 16), eps=1e-3)  # fewer samples than dimensions: singular covariance
    assert torch.isfinite(w).all()


def test_loss_is_zero_for_identical_views_and_positive_otherwise():
    torch.manual_seed(2)
    z = torch.randn(32, 4)
    assert WMSELoss(w_size=16)(z, z.clone()).item() == pytest.approx(0.0, abs=1e-5)
    assert WMSELoss(w_size=16)(z, torch.randn(32, 4)).item() > 0.5


def test_each_group_is_whitened_on_its_own():
    torch.manual_seed(4)
    z0, z1 = torch.randn(16, 2), torch.randn(16, 2)
    perm = torch.randperm(16, generator=torch.Generator().manual_seed(0))
    expected = 0.0
    for idx in (perm[:8], perm[8:]):
        w0, w1 = F.normalize(whiten(z0[idx]), dim=1), F.normalize(whiten(z1[idx]), dim=1)
        expected += (2 - 2 * (w0 * w1).sum(dim=1)).sum().item()
    assert WMSELoss(w_size=8, eps=0.0)(z0, z1).item() == pytest.approx(expected / 16, rel=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [({"w_size": 1}, "w_size"), ({"w_iter": 0}, "w_iter"), ({"eps": 1.0}, "eps")],
)
def test_bad_settings_are_refused(kwargs, word):
    with pytest.raises(ValueError, match=word):
        WMSELoss(**kwargs)
