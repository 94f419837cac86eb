import math

import pytest
import torch

from sslstudio.core.losses.vicreg import VICRegLoss, covariance_term, invariance_term, variance_term

H = torch.tensor(
    [[1, 1, 1], [-1, 1, -1], [1, -1, -1], [-1, -1, 1]], dtype=torch.float32
)  # orthogonal columns


def test_variance_term_is_zero_once_every_std_reaches_the_target():
    torch.manual_seed(0)
    assert variance_term(3 * torch.randn(500, 8)).item() == 0.0
    assert variance_term(2 * H).item() == 0.0  # unbiased std of each column: sqrt(4/3) * 2 > 1


def test_variance_term_of_constant_features_is_target_minus_sqrt_eps():
    z = torch.full((16, 4), 7.0)
    assert variance_term(z, std_target=1.0, eps=1e-4).item() == pytest.approx(
        1 - math.sqrt(1e-4), rel=1e-5
    )


def test_covariance_term_is_zero_for_decorrelated_and_known_for_duplicated_features():
    assert covariance_term(H).item() == pytest.approx(0.0, abs=1e-7)
    # two copies of one column with variance v: off-diagonals are v and v, so (v² + v²) / d = v²
    x = torch.tensor([[1.0], [-1.0], [3.0], [-3.0]])
    v = x.var().item()
    assert covariance_term(torch.cat([x, x], dim=1)).item() == pytest.approx(v**2, rel=1e-5)


def test_invariance_term_is_mean_squared_error():
    a, b = torch.zeros(2, 3), torch.ones(2, 3) * 2
    assert invariance_term(a, b).item() == pytest.approx(4.0)


def test_loss_weights_the_three_terms():
    torch.manual_seed(1)
    z0, z1 = torch.randn(10, 4), torch.randn(10, 4)
    lam, mu, nu = 2.0, 3.0, 0.5
    expected = (
        lam * invariance_term(z0, z1)
        + mu * (variance_term(z0) + variance_term(z1))
        + nu * (covariance_term(z0) + covariance_term(z1))
    )
    assert VICRegLoss(lam, mu, nu)(z0, z1).item() == pytest.approx(expected.item(), rel=1e-6)


def test_identical_spread_decorrelated_views_cost_nothing():
    z = 2 * H
    assert VICRegLoss()(z, z.clone()).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"invariance": -1.0}, "invariance"),
        ({"covariance": float("nan")}, "covariance"),
        ({"std_target": 0.0}, "std_target"),
        ({"eps": 0.0}, "eps"),
    ],
)
def test_bad_settings_are_refused(kwargs, word):
    with pytest.raises(ValueError, match=word):
        VICRegLoss(**kwargs)
