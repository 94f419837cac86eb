import torch

from sslstudio.core.methods import Batch
from tests.core.methods.conftest import views_for


def test_multicrop_views_and_prototypes_frozen_for_the_first_epoch(make_method):
    method, cfg = make_method("swav", n_local=2)
    method.on_train_start(num_images=16, total_steps=10)  # batch 8: one epoch = 2 steps
    views = views_for(method, cfg)
    assert [tuple(v.shape[-2:]) for v in views] == [(16, 16)] * 2 + [
        (8, 8)
    ] * 2  # 0.45 x 16, at least 8 px
    opt = torch.optim.SGD(method.parameters(), lr=0.5)
    before = method.prototypes.weight.detach().clone()
    frozen = []
    for step in range(3):
        loss, extra = method.training_step(Batch(views_for(method, cfg, step)))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        frozen.append(method.prototypes.weight.grad is None)
        opt.step()
        method.on_step_end(step, 10)
        if step == 1:
            assert torch.allclose(method.prototypes.weight, before, atol=1e-6)  # fixed in epoch 0
    assert frozen == [True, True, False] and extra["prototypes_frozen"] == 0.0
    assert not torch.allclose(method.prototypes.weight, before, atol=1e-4)
    assert torch.allclose(method.prototypes.weight.norm(dim=1), torch.ones(128), atol=1e-5)


def test_queue_fills_with_global_embeddings(make_method):
    method, cfg = make_method("swav", queue_length=32, n_local=0)
    method.on_train_start(16, 10)
    for step in range(3):
        loss, _ = method.training_step(Batch(views_for(method, cfg, step)))
        method.on_step_end(step, 10)
    assert torch.isfinite(loss)
    assert torch.allclose(method.queue.norm(dim=1), torch.ones(32), atol=1e-5)  # 3 x 16 >= 32 rows
