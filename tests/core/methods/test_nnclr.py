import torch
import torch.nn.functional as F

from sslstudio.core.methods import Batch
from tests.core.methods.conftest import views_for


def test_empty_support_set_gives_each_sample_itself(make_method):
    method, _ = make_method("nnclr", proj_out=8)
    z = torch.randn(4, 8)
    assert torch.allclose(method.nearest(z), F.normalize(z, dim=1))


def test_nearest_neighbour_is_searched_among_filled_rows_only(make_method):
    method, _ = make_method("nnclr", proj_out=8)
    method.on_train_start(num_images=12, total_steps=4)  # 6 rows in use
    stored = torch.eye(8)[:2]  # two stored embeddings: e0 and e1
    method.support.enqueue(stored)
    query = torch.zeros(2, 8)
    query[0, [1, 3]] = torch.tensor([1.0, 0.3])  # nearest to e1
    query[1, [0, 2]] = torch.tensor([1.0, 0.2])  # nearest to e0
    with torch.no_grad():  # an unfilled (random start) row that matches query 0 exactly
        method.support.rows[3] = F.normalize(query[0], dim=0)
    assert torch.equal(method.nearest(query), stored[[1, 0]])


def test_first_view_projections_join_the_support_set_after_the_step(make_method):
    method, cfg = make_method("nnclr")
    method.on_train_start(num_images=32, total_steps=4)
    views = views_for(method, cfg)
    loss, _ = method.training_step(Batch(views))
    loss.backward()
    assert method.support.filled.item() == 0
    method.on_step_end(0, 4)
    with torch.no_grad():  # train-mode BN: the same batch gives the same projections again
        z0 = method.projector(method.backbone(torch.cat(views))).chunk(2)[0]
    assert method.support.filled.item() == 8
    assert torch.allclose(method.support.contents()[:8], F.normalize(z0, dim=1), atol=1e-5)
