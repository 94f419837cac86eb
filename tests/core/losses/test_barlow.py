import pytest
import torch

from sslstudio.core.losses.barlow import BarlowTwinsLoss, cross_correlation

# columns of a 4x4 Hadamard matrix without the all-ones one: mean 0, std 1, mutually orthogonal
H = torch.tensor([[1, 1, 1], [-1, 1, -1], [1, -1, -1], [-1, -1, 1]], dtype=torch.float32)


def test_loss_is_zero_when_cross_correlation_is_identity():
    assert torch.allclose(cross_correlation(H, H), torch.eye(3), atol=1e-4)
    # any shift and positive scale per column is normalised away
    assert BarlowTwinsLoss()(H, 5 * H + 2).item() == pytest.approx(0.0, abs=1e-6)


def test_cross_correlation_is_pearson_correlation():
    torch.manual_seed(0)
    z0, z1 = torch.randn(50, 3), torch.randn(50, 3)
    ref = torch.corrcoef(torch.cat([z0, z1], dim=1).T)[
        :3, 3:
    ]  # (3, 3) block: z0 columns vs z1 columns
    assert torch.allclose(cross_correlation(z0, z1, eps=0.0), ref, atol=1e-5)


def test_terms_follow_the_formula():
    # views anti-correlated on every dimension: C = -I, so each diagonal term is (1 - (-1))^2 = 4
    assert BarlowTwinsLoss()(H, -H).item() == pytest.approx(4 * 3, rel=1e-4)
    # identical views with one duplicated dimension: diagonal perfect, two off-diagonal entries of 1
    z = torch.cat([H, H[:, :1]], dim=1)  # (4, 4): column 3 repeats column 0
    lam = 0.1
    assert BarlowTwinsLoss(lam)(z, z).item() == pytest.approx(lam * 2, rel=1e-4)


@pytest.mark.parametrize("lam", [-0.1, float("inf"), float("nan")])
def test_bad_lambda_is_refused(lam):
    with pytest.raises(ValueError, match="lambda_offdiag"):
        BarlowTwinsLoss(lam)


def test_a_single_sample_is_refused():
    with pytest.raises(ValueError, match="at least 2"):
        BarlowTwinsLoss()(torch.zeros(1, 3), torch.zeros(1, 3))
