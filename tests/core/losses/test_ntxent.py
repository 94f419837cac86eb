import math

import pytest
import torch
import torch.nn.functional as F

from sslstudio.core.losses.ntxent import NTXentLoss


def test_orthogonal_pairs_have_closed_form():
    # z0 = z1 = one-hot rows: each positive has similarity 1, every negative 0, so
    # loss = -log(e^{1/t} / (e^{1/t} + (2n - 2) e^0))
    n, t = 8, 0.5
    z = torch.eye(n, 16)
    loss = NTXentLoss(temperature=t)(z, z.clone())
    expected = -math.log(math.exp(1 / t) / (math.exp(1 / t) + 2 * n - 2))
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_identical_everything_gives_log_2n_minus_1():
    # every embedding equal: all 2n-1 candidates tie, loss = log(2n - 1)
    n = 5
    z = torch.ones(n, 4)
    assert NTXentLoss(0.1)(z, z).item() == pytest.approx(math.log(2 * n - 1), rel=1e-5)


def test_matches_reference_cross_entropy_and_is_symmetric():
    torch.manual_seed(0)
    z0, z1 = torch.randn(6, 3), torch.randn(6, 3)
    t = 0.3
    loss = NTXentLoss(t)(z0, z1)
    # reference, written the slow way: one row at a time
    z = F.normalize(torch.cat([z0, z1]), dim=1)
    total = 0.0
    for i in range(12):
        pos = (i + 6) % 12
        logits = torch.tensor([(z[i] @ z[j]).item() / t for j in range(12) if j != i])
        target = pos if pos < i else pos - 1
        total += (torch.logsumexp(logits, 0) - logits[target]).item()
    assert loss.item() == pytest.approx(total / 12, rel=1e-5)
    assert NTXentLoss(t)(z1, z0).item() == pytest.approx(loss.item(), rel=1e-6)


def test_gradient_pulls_positives_together():
    torch.manual_seed(1)
    z0 = torch.randn(4, 8, requires_grad=True)
    z1 = torch.randn(4, 8)
    before = F.cosine_similarity(z0, z1).mean().item()
    opt = torch.optim.SGD([z0], lr=0.5)
    for _ in range(20):
        opt.zero_grad()
        NTXentLoss(0.5)(z0, z1).backward()
        opt.step()
    assert F.cosine_similarity(z0, z1).mean().item() > before + 0.3


@pytest.mark.parametrize("t", [0.0, -1.0, float("nan")])
def test_bad_temperature_is_refused(t):
    with pytest.raises(ValueError, match="temperature"):
        NTXentLoss(t)


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="must both be"):
        NTXentLoss()(torch.zeros(4, 3), torch.zeros(5, 3))
