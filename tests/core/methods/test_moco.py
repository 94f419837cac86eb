import pytest
import torch
import torch.nn.functional as F

from sslstudio.core.methods import Batch
from tests.core.methods.conftest import views_for


def _params(module):
    return [p.detach().clone() for p in module.parameters()]


@pytest.mark.parametrize("m", [0.0, 1.0])
def test_key_encoder_is_an_ema_of_the_online_encoder(make_method, m):
    method, cfg = make_method("moco", momentum_base=m, momentum_final=m)
    method.on_train_start(num_images=32, total_steps=4)
    loss, extra = method.training_step(Batch(views_for(method, cfg)))
    loss.backward()
    assert extra["momentum"] == m
    assert all(p.grad is None for p in method.key_backbone.parameters())
    assert all(p.grad is not None for p in method.backbone.parameters())
    before = _params(method.key_backbone) + _params(method.key_head)
    with torch.no_grad():  # move the online encoder, as an optimiser step would
        for p in [*method.backbone.parameters(), *method.head.parameters()]:
            p.add_(0.5)
    method.on_step_end(0, 4)
    after = _params(method.key_backbone) + _params(method.key_head)
    online = _params(method.backbone) + _params(method.head)
    expected = online if m == 0.0 else before  # m = 0: a copy; m = 1: frozen
    assert all(torch.equal(a, e) for a, e in zip(after, expected, strict=True))


def test_keys_join_the_queue_only_after_the_step(make_method):
    method, cfg = make_method("moco")
    method.on_train_start(num_images=40, total_steps=4)  # queue capped at 20 rows
    assert method.queue.length == 20
    start = method.queue.contents().clone()
    views = views_for(method, cfg)
    method.training_step(Batch(views))
    assert torch.equal(method.queue.contents(), start)  # the loss saw the old queue
    method.on_step_end(0, 4)
    with torch.no_grad():
        keys = method.key_head(method.key_backbone(views[1]))
    assert torch.allclose(method.queue.contents()[:8], F.normalize(keys, dim=1), atol=1e-5)
    assert method.queue.ptr.item() == 8


def test_symmetric_loss_queues_both_views(make_method):
    method, cfg = make_method("moco", symmetric=True)
    method.on_train_start(num_images=64, total_steps=4)
    loss, _ = method.training_step(Batch(views_for(method, cfg)))
    method.on_step_end(0, 4)
    assert torch.isfinite(loss) and method.queue.filled.item() == 16
