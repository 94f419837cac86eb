import pytest
import torch

from sslstudio.core.losses.infonce import InfoNCELoss
from sslstudio.core.methods import Batch
from tests.core.methods.conftest import views_for


def test_loss_is_symmetric_in_batch_infonce_scaled_by_two_tau(make_method):
    method, cfg = make_method("mocov3", temperature=0.5)
    views = views_for(method, cfg)
    loss, _ = method.training_step(Batch(views))
    with torch.no_grad():
        x = torch.cat(views)
        p0, p1 = method.predictor(method.projector(method.backbone(x))).chunk(2)
        k0, k1 = method.key_projector(method.key_backbone(x)).chunk(2)  # no predictor on keys
        ctr = InfoNCELoss(0.5)
        expected = (ctr(p0, k1) + ctr(p1, k0)) * (2 * 0.5)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_momentum_encoder_follows_by_ema_and_gets_no_gradient(make_method):
    method, cfg = make_method("mocov3", momentum_base=0.9, momentum_final=1.0)
    method.on_train_start(16, total_steps=10)
    loss, extra = method.training_step(Batch(views_for(method, cfg)))
    loss.backward()
    assert extra["momentum"] == pytest.approx(0.9)
    assert all(p.grad is None for p in method.key_projector.parameters())
    before = [p.clone() for p in method.key_projector.parameters()]
    with torch.no_grad():
        for p in method.projector.parameters():
            p.add_(1.0)
    method.on_step_end(0, 10)
    for t, t0, s in zip(
        method.key_projector.parameters(), before, method.projector.parameters(), strict=True
    ):
        assert torch.allclose(t, 0.9 * t0 + 0.1 * s, atol=1e-6)
