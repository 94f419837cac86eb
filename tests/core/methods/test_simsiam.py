import torch

from sslstudio.core.losses.byol import NegativeCosineLoss
from sslstudio.core.methods import Batch
from tests.core.methods.conftest import views_for


def _grads(method, loss):
    method.zero_grad(set_to_none=True)
    loss.backward()
    return [p.grad.clone() for p in method.projector.parameters()]


def test_targets_are_held_still_by_stop_gradient(make_method):
    method, cfg = make_method("simsiam")
    views = views_for(method, cfg)
    loss, _ = method.training_step(Batch(views))
    got = _grads(method, loss)
    crit = NegativeCosineLoss()

    def manual(detach: bool):
        z = method.projector(method.backbone(torch.cat(views)))
        p0, p1 = method.predictor(z).chunk(2)
        t0, t1 = (z.detach() if detach else z).chunk(2)
        return (crit(p0, t1) + crit(p1, t0)) / 2

    held = _grads(method, manual(detach=True))
    free = _grads(method, manual(detach=False))
    assert all(torch.allclose(g, h, atol=1e-6) for g, h in zip(got, held, strict=True))
    assert not all(torch.allclose(g, f, atol=1e-6) for g, f in zip(got, free, strict=True))


def test_loss_is_a_mean_negative_cosine(make_method):
    method, cfg = make_method("simsiam")
    loss, _ = method.training_step(Batch(views_for(method, cfg)))
    assert -1.0 <= loss.item() <= 1.0
