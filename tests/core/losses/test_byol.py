import pytest
import torch

from sslstudio.core.losses.byol import NegativeCosineLoss, NormalizedMSELoss


def test_normalized_mse_is_zero_for_aligned_and_four_for_opposite_vectors():
    torch.manual_seed(0)
    p = torch.randn(6, 5)
    assert NormalizedMSELoss()(p, 3 * p).item() == pytest.approx(0.0, abs=1e-6)  # scale-free
    assert NormalizedMSELoss()(p, -p).item() == pytest.approx(4.0, rel=1e-6)
    assert NormalizedMSELoss()(torch.eye(2), torch.eye(2).flip(0)).item() == pytest.approx(
        2.0
    )  # orthogonal


def test_normalized_mse_is_the_squared_distance_of_unit_vectors():
    torch.manual_seed(1)
    p, z = torch.randn(7, 4), torch.randn(7, 4)
    pn, zn = p / p.norm(dim=1, keepdim=True), z / z.norm(dim=1, keepdim=True)
    expected = (pn - zn).pow(2).sum(dim=1).mean()
    assert NormalizedMSELoss()(p, z).item() == pytest.approx(expected.item(), rel=1e-5)


def test_negative_cosine_bounds_and_relation_to_normalized_mse():
    torch.manual_seed(2)
    p, z = torch.randn(5, 3), torch.randn(5, 3)
    assert NegativeCosineLoss()(p, p).item() == pytest.approx(-1.0)
    assert NegativeCosineLoss()(p, -p).item() == pytest.approx(1.0)
    assert NormalizedMSELoss()(p, z).item() == pytest.approx(
        2 + 2 * NegativeCosineLoss()(p, z).item(), rel=1e-5
    )


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="must both be"):
        NormalizedMSELoss()(torch.zeros(3, 2), torch.zeros(3, 4))
