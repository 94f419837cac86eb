import math

import pytest
import torch

from sslstudio.core.losses.swav import SwAVLoss, sinkhorn


def test_sinkhorn_marginals():
    torch.manual_seed(0)
    b, k = 32, 8
    scores = torch.nn.functional.normalize(torch.randn(b, k), dim=1)
    q = sinkhorn(scores, epsilon=0.05, iterations=3)
    assert q.shape == (b, k) and (q >= 0).all()
    assert torch.allclose(q.sum(dim=1), torch.ones(b), atol=1e-5)  # each sample: a distribution
    # three iterations (the paper's) already pull prototype loads toward B/K ...
    plain = torch.softmax(scores / 0.05, dim=1).sum(dim=0)  # loads without balancing
    spread = lambda loads: (loads.max() - loads.min()).item()  # noqa: E731
    q10 = sinkhorn(scores, epsilon=0.05, iterations=10)
    assert spread(q10.sum(dim=0)) < spread(q.sum(dim=0)) < spread(plain)
    q = sinkhorn(scores, epsilon=0.05, iterations=200)
    assert torch.allclose(
        q.sum(dim=0), torch.full((k,), b / k), rtol=1e-3
    )  # ... exactly in the limit


def test_sinkhorn_spreads_a_batch_that_prefers_one_prototype():
    """The equipartition: even when every sample scores prototype 0 highest, codes use all."""
    torch.manual_seed(0)
    scores = 0.1 * torch.randn(64, 4)
    scores[:, 0] += 0.5
    assert (scores.argmax(dim=1) == 0).all()
    q = sinkhorn(scores, epsilon=0.05, iterations=50)
    assert torch.allclose(q.sum(dim=0), torch.full((4,), 16.0), rtol=1e-2)


def test_swapped_prediction_of_two_views_in_closed_form():
    torch.manual_seed(0)
    s0, s1 = torch.randn(16, 5), torch.randn(16, 5)
    loss = SwAVLoss(temperature=0.1)([s0, s1], n_global=2)
    q0, q1 = sinkhorn(s0), sinkhorn(s1)
    ce = lambda q, s: -(q * torch.log_softmax(s / 0.1, dim=1)).sum(dim=1).mean()  # noqa: E731
    assert loss.item() == pytest.approx(((ce(q0, s1) + ce(q1, s0)) / 2).item(), rel=1e-5)


def test_local_views_get_no_codes_and_queue_rows_get_no_loss():
    torch.manual_seed(0)
    views = [torch.randn(8, 6, requires_grad=True) for _ in range(4)]
    loss = SwAVLoss()(views, n_global=2, queue=torch.randn(24, 6))
    loss.backward()
    assert math.isfinite(loss.item()) and all(v.grad is not None for v in views)


@pytest.mark.parametrize("kw", [{"temperature": 0}, {"epsilon": -1}, {"iterations": 0}])
def test_bad_hyper_parameters_are_refused(kw):
    with pytest.raises(ValueError):
        SwAVLoss(**kw)


def test_sinkhorn_stays_finite_for_a_small_epsilon():
    scores = torch.tensor([[1.0, -1.0, 0.0], [-1.0, 1.0, 0.5]])
    q = sinkhorn(scores, epsilon=0.005, iterations=3)  # exp(2 / 0.005) would overflow
    assert torch.isfinite(q).all() and torch.allclose(q.sum(dim=1), torch.ones(2))
