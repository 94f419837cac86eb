import pytest
import torch

from sslstudio.core.methods import Batch
from tests.core.methods.conftest import views_for


def test_teacher_follows_the_student_by_ema_and_gets_no_gradient(make_method):
    method, cfg = make_method("dino", momentum_base=0.9, momentum_final=1.0)
    method.on_train_start(16, total_steps=10)
    loss, extra = method.training_step(Batch(views_for(method, cfg)))
    loss.backward()
    assert extra["teacher_temp"] == pytest.approx(0.04)
    assert all(p.grad is None for p in method.teacher_backbone.parameters())
    teacher_before = [p.clone() for p in method.teacher_head.parameters()]
    with torch.no_grad():
        for p in method.head.parameters():
            p.add_(1.0)
    method.on_step_end(0, 10)  # momentum 0.9 at step 0
    for t0, t1, s in zip(
        teacher_before, method.teacher_head.parameters(), method.head.parameters()
    ):
        assert torch.allclose(t1, 0.9 * t0 + 0.1 * s, atol=1e-6)


def test_teacher_temperature_warms_up_linearly(make_method):
    method, _ = make_method("dino", teacher_temp_warmup=0.5)
    method.on_train_start(16, total_steps=10)
    temps = []
    for step in range(7):
        temps.append(method.teacher_temperature())
        method.on_step_end(step, 10)
    assert temps == pytest.approx([0.04, 0.046, 0.052, 0.058, 0.064, 0.07, 0.07])


def test_dino_trains_a_vit_on_global_and_local_views(make_method):
    method, cfg = make_method("dino", backbone="vit_tiny", n_local=2)
    method.on_train_start(16, 10)
    views = views_for(method, cfg)
    assert {v.shape[-1] for v in views} == {16, 8}
    loss, _ = method.training_step(Batch(views))
    loss.backward()
    assert torch.isfinite(loss) and method.backbone.body.pos_embed.grad is not None
