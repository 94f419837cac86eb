import torch

from sslstudio.core.losses.barlow import BarlowTwinsLoss
from sslstudio.core.methods import Batch
from tests.core.methods.conftest import views_for


def test_loss_is_barlow_twins_of_the_projections_and_training_lowers_it(make_method):
    method, cfg = make_method("barlowtwins", proj_hidden=64, proj_out=32)
    assert method.criterion.lambda_offdiag == 5e-3  # the paper's λ
    views = views_for(method, cfg, n=16)
    with torch.no_grad():
        z0, z1 = method.projector(method.backbone(torch.cat(views))).chunk(2)
        assert method.training_step(Batch(views))[0].item() == BarlowTwinsLoss()(z0, z1).item()
    opt = torch.optim.Adam(method.parameters(), lr=1e-3)
    losses = []
    for _ in range(5):
        loss, _ = method.training_step(Batch(views))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
