import torch

from sslstudio.core.methods import Batch
from sslstudio.core.methods.cpc import RowContext, patch_grid
from tests.core.methods.conftest import views_for


def test_context_is_causal_over_rows():
    torch.manual_seed(0)
    net = RowContext(in_dim=8, dim=16, blocks=3)
    z = torch.randn(2, 8, 7, 7)
    changed = z.clone()
    changed[:, :, 5] += torch.randn(2, 8, 7)  # alter row 5
    c, c2 = net(z), net(changed)
    assert torch.equal(c[:, :, :5], c2[:, :, :5])  # rows above: untouched
    assert not torch.allclose(c[:, :, 5:], c2[:, :, 5:])
    # and by gradients: context row 2 depends on no input row below it
    z.requires_grad_(True)
    net(z)[:, :, 2].sum().backward()
    assert z.grad[:, :, 3:].abs().max() == 0 and z.grad[:, :, :3].abs().max() > 0


def test_patch_grid_overlaps_by_half():
    img = torch.arange(16 * 16, dtype=torch.float32).view(1, 1, 16, 16)
    patches, g = patch_grid(img, grid=7)
    assert g == 7 and patches.shape == (49, 1, 4, 4)  # side 2*16/8 = 4, stride 2
    assert torch.equal(patches[7 * 3 + 2, 0], img[0, 0, 6:10, 4:8])  # row 3, column 2


def test_cpc_trains_without_batchnorm_and_embeds_whole_images(make_method):
    method, cfg = make_method("cpc")
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in method.modules())
    loss, extra = method.training_step(Batch(views_for(method, cfg)))
    loss.backward()
    assert torch.isfinite(loss) and 0 <= float(extra["cpc_accuracy"]) <= 1
    method.eval()
    assert method.embed(views_for(method, cfg)[0]).shape == (8, method.backbone.feature_dim)
