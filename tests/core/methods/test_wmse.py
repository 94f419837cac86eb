import torch

from sslstudio.core.losses.wmse import whiten
from sslstudio.core.methods import Batch
from tests.core.methods.conftest import views_for


def test_works_with_a_batch_smaller_than_the_whitening_group(make_method):
    method, cfg = make_method("wmse", w_size=64, proj_out=4)
    loss, _ = method.training_step(Batch(views_for(method, cfg, n=8)))  # one group of 8
    loss.backward()
    assert torch.isfinite(loss) and 0.0 <= loss.item() <= 4.0
    assert method.backbone.body[0].weight.grad is not None


def test_whitened_projections_of_a_batch_are_white(make_method):
    method, cfg = make_method("wmse", proj_out=4)
    with torch.no_grad():
        z = method.projector(method.backbone(torch.cat(views_for(method, cfg, n=16))))  # (32, 4)
    w = whiten(z)
    assert torch.allclose(w.T @ w / (len(w) - 1), torch.eye(4), atol=1e-3)
