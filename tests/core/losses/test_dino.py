import pytest
import torch

from sslstudio.core.losses.dino import DINOLoss, teacher_probs, updated_center


def test_teacher_equal_to_student_gives_the_entropy():
    """Cross-entropy of a distribution with itself is its entropy."""
    torch.manual_seed(0)
    s = torch.randn(8, 32)
    loss_fn = DINOLoss(32, student_temp=0.1)
    loss = loss_fn([s, s], [s, s], teacher_temp=0.1)  # centre starts at 0
    p = torch.softmax(s / 0.1, dim=1)
    entropy = -(p * torch.log(p)).sum(dim=1).mean()
    assert loss.item() == pytest.approx(entropy.item(), rel=1e-5)


def test_centre_moves_toward_the_teacher_batch_mean():
    torch.manual_seed(0)
    t = torch.randn(16, 10) + 3.0
    mean = t.mean(dim=0, keepdim=True)
    loss_fn = DINOLoss(10, center_momentum=0.9)
    gaps = []
    for _ in range(30):
        gaps.append((loss_fn.center - mean).norm().item())
        loss_fn([t[:8], t[8:]], [t[:8], t[8:]], teacher_temp=0.04)
    assert all(a > b for a, b in zip(gaps, gaps[1:]))
    assert torch.allclose(updated_center(torch.zeros(1, 10), t, 0.9), 0.1 * mean)


def test_centring_and_sharpening():
    t = torch.tensor([[1.0, 2.0, 3.0]])
    centred = teacher_probs(t, center=t, temperature=0.04)  # centre = output: uniform
    assert torch.allclose(centred, torch.full((1, 3), 1 / 3))
    sharp, soft = (
        teacher_probs(t, torch.zeros(1, 3), 0.04),
        teacher_probs(t, torch.zeros(1, 3), 1.0),
    )
    assert sharp[0, 2] > soft[0, 2] and sharp[0, 2] > 0.99


def test_student_is_never_compared_with_its_own_view():
    """2 global + 2 local student views, 2 teacher views: 2 * 4 - 2 = 6 pairs."""
    torch.manual_seed(0)
    t = [torch.randn(4, 6) for _ in range(2)]
    loss = DINOLoss(6)([t[0], t[1], t[0], t[1]], t, teacher_temp=0.1)
    q = [torch.softmax(x / 0.1, dim=1) for x in t]
    lp = [torch.log_softmax(x / 0.1, dim=1) for x in (t[0], t[1], t[0], t[1])]
    pairs = [(0, 1), (0, 2), (0, 3), (1, 0), (1, 2), (1, 3)]
    want = sum(-(q[a] * lp[b]).sum(dim=1).mean() for a, b in pairs) / 6
    assert loss.item() == pytest.approx(want.item(), rel=1e-5)


@pytest.mark.parametrize("kw", [{"out_dim": 0}, {"student_temp": 0.0}, {"center_momentum": 1.0}])
def test_bad_hyper_parameters_are_refused(kw):
    with pytest.raises(ValueError):
        DINOLoss(**{"out_dim": 8, **kw})
