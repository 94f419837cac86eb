import torch

from sslstudio.core.losses.vicreg import covariance_term, invariance_term, variance_term
from sslstudio.core.methods import Batch
from tests.core.methods.conftest import views_for


def test_loss_weights_the_terms_of_the_projections(make_method):
    method, cfg = make_method("vicreg", invariance=2.0, variance=3.0, covariance=4.0)
    views = views_for(method, cfg)
    loss, _ = method.training_step(Batch(views))
    with torch.no_grad():
        z0, z1 = method.projector(method.backbone(torch.cat(views))).chunk(2)
        expected = (
            2.0 * invariance_term(z0, z1)
            + 3.0 * (variance_term(z0) + variance_term(z1))
            + 4.0 * (covariance_term(z0) + covariance_term(z1))
        )
    assert torch.allclose(loss, expected, rtol=1e-5)


def test_paper_defaults(make_method):
    method, _ = make_method("vicreg")
    assert method.criterion.weights == (25.0, 25.0, 1.0)
    assert (method.criterion.std_target, method.criterion.eps) == (1.0, 1e-4)
