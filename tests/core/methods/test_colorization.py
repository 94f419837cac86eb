import torch

from sslstudio.core.methods import Batch
from sslstudio.core.methods.colorization import lightness
from sslstudio.core.transforms.views import normalise
from tests.core.methods.conftest import views_for


def test_the_backbone_sees_lightness_only(make_method):
    method, cfg = make_method("colorization")
    assert {"jitter_p", "grey_p", "hed_p"} <= set(method.constraints)
    seen = []
    first_conv = method.backbone.body[0]  # the dense path bypasses Backbone.forward
    first_conv.register_forward_hook(lambda m, inp, out: seen.append(inp[0]))
    loss, _ = method.training_step(Batch(views_for(method, cfg)))
    loss.backward()
    x = seen[0]
    assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 0], x[:, 2])
    assert torch.isfinite(loss) and method.decoder[0].weight.grad is not None
    method.eval()
    assert method.embed(views_for(method, cfg)[0]).shape == (8, 128)


def test_lightness_undoes_the_view_normalisation():
    white = normalise(torch.ones(1, 3, 2, 2))  # what the pipeline hands over for a white image
    x, lab = lightness(white)
    assert torch.allclose(lab[:, 0], torch.full((1, 2, 2), 100.0), atol=1e-3)
    assert torch.allclose(x, torch.ones(1, 3, 2, 2), atol=1e-4)  # L = 100 -> input 1
