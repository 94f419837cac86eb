import math

import pytest
import torch
import torch.nn.functional as F

from sslstudio.core.losses.infonce import InfoNCELoss


def test_one_hot_in_batch_has_closed_form():
    # q = k = one-hot rows: the positive scores 1/t, each of the n - 1 other keys scores 0
    n, t = 6, 0.2
    z = torch.eye(n, 10)
    expected = -math.log(math.exp(1 / t) / (math.exp(1 / t) + n - 1))
    assert InfoNCELoss(t)(z, z.clone()).item() == pytest.approx(expected, rel=1e-5)


def test_one_hot_with_orthogonal_queue_has_closed_form():
    # the m queued negatives are orthogonal to every query: each scores 0
    n, m, t = 4, 5, 0.5
    eye = torch.eye(n + m)
    q, queue = eye[:n], eye[n:]
    expected = -math.log(math.exp(1 / t) / (math.exp(1 / t) + m))
    assert InfoNCELoss(t)(q, q.clone(), queue).item() == pytest.approx(expected, rel=1e-5)


def test_negatives_identical_to_the_positive_give_log_of_candidates():
    # every query, key and negative points one way: the 1 + m candidates tie
    n, m = 3, 7
    same = torch.ones(n, 4)
    assert InfoNCELoss(0.1)(same, same, torch.ones(m, 4)).item() == pytest.approx(
        math.log(1 + m), rel=1e-5
    )


def test_matches_reference_written_row_by_row():
    torch.manual_seed(0)
    q, k, queue = torch.randn(5, 3), torch.randn(5, 3), torch.randn(7, 3)
    t = 0.3
    qn, kn, nn_ = (F.normalize(x, dim=1) for x in (q, k, queue))
    total_queue, total_batch = 0.0, 0.0
    for i in range(5):
        logits = torch.cat([(qn[i] @ kn[i]).view(1), nn_ @ qn[i]]) / t
        total_queue += (torch.logsumexp(logits, 0) - logits[0]).item()
        batch_logits = kn @ qn[i] / t
        total_batch += (torch.logsumexp(batch_logits, 0) - batch_logits[i]).item()
    assert InfoNCELoss(t)(q, k, queue).item() == pytest.approx(total_queue / 5, rel=1e-5)
    assert InfoNCELoss(t)(q, k).item() == pytest.approx(total_batch / 5, rel=1e-5)


def test_scale_of_inputs_does_not_matter():
    torch.manual_seed(1)
    q, k = torch.randn(4, 8), torch.randn(4, 8)
    assert InfoNCELoss()(3 * q, 0.5 * k).item() == pytest.approx(
        InfoNCELoss()(q, k).item(), rel=1e-5
    )


@pytest.mark.parametrize("t", [0.0, -0.2, float("nan")])
def test_bad_temperature_is_refused(t):
    with pytest.raises(ValueError, match="temperature"):
        InfoNCELoss(t)


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="must both be"):
        InfoNCELoss()(torch.zeros(4, 3), torch.zeros(5, 3))
    with pytest.raises(ValueError, match="negatives"):
        InfoNCELoss()(torch.zeros(4, 3), torch.zeros(4, 3), torch.zeros(6, 2))


def test_keys_gathered_from_every_rank_give_each_rank_its_share_of_the_global_loss():
    """Two ranks' queries against the global batch's keys: the mean of their losses is the
    loss of one process on the global batch; keys of another size need an offset."""
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(8, 5, generator=g), torch.randn(8, 5, generator=g)
    loss = InfoNCELoss(0.3)
    parts = [loss(q[:4], k, offset=0), loss(q[4:], k, offset=4)]
    assert ((parts[0] + parts[1]) / 2).item() == pytest.approx(loss(q, k).item(), abs=1e-6)
    assert abs(parts[0].item() - loss(q[:4], k[:4]).item()) > 1e-3  # the other keys count
    with pytest.raises(ValueError, match="offset"):
        loss(q[4:], k, offset=6)
