import pytest
import torch

from sslstudio.core.losses.byol import NormalizedMSELoss
from sslstudio.core.methods import Batch
from tests.core.methods.conftest import views_for


def test_loss_sums_both_directions_against_the_target_network(make_method):
    method, cfg = make_method("byol")
    views = views_for(method, cfg)
    loss, _ = method.training_step(Batch(views))
    with torch.no_grad():
        x = torch.cat(views)
        p0, p1 = method.predictor(method.projector(method.backbone(x))).chunk(2)
        z0, z1 = method.target_projector(method.target_backbone(x)).chunk(2)
        expected = NormalizedMSELoss()(p0, z1) + NormalizedMSELoss()(p1, z0)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert 0.0 <= loss.item() <= 8.0


@pytest.mark.parametrize("m", [0.0, 1.0])
def test_target_is_an_ema_of_the_online_network_and_gets_no_gradient(make_method, m):
    method, cfg = make_method("byol", momentum_base=m, momentum_final=m)
    method.on_train_start(16, total_steps=4)
    loss, _ = method.training_step(Batch(views_for(method, cfg)))
    loss.backward()
    assert all(p.grad is None for p in method.target_backbone.parameters())
    before = [p.clone() for p in method.target_projector.parameters()]
    with torch.no_grad():
        for p in method.projector.parameters():
            p.add_(1.0)
    method.on_step_end(0, 4)
    expected = list(method.projector.parameters()) if m == 0.0 else before
    assert all(
        torch.equal(t, e)
        for t, e in zip(method.target_projector.parameters(), expected, strict=True)
    )


def test_momentum_rises_along_the_cosine_schedule(make_method):
    method, cfg = make_method("byol", momentum_base=0.9, momentum_final=1.0)
    method.on_train_start(16, total_steps=3)
    seen = []
    for step in range(3):
        seen.append(method.training_step(Batch(views_for(method, cfg, step=step)))[1]["momentum"])
        method.on_step_end(step, 3)
    assert seen == pytest.approx([0.9, 0.95, 1.0])
