"""Under bf16 autocast (what the trainer uses on a GPU) the losses still compute in float32:
Cholesky whitening, cross-correlations and InfoNCE logits need the precision."""

import pytest
import torch

from sslstudio.core.methods import Batch
from tests.core.methods.conftest import views_for


@pytest.mark.parametrize(
    "name", ["moco", "mocov3", "nnclr", "byol", "simsiam", "barlowtwins", "vicreg", "wmse"]
)
def test_loss_is_finite_float32_under_bf16_autocast(make_method, name):
    method, cfg = make_method(name)
    method.on_train_start(num_images=32, total_steps=2)
    views = views_for(method, cfg, n=16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, _ = method.training_step(Batch(views))
    loss.backward()
    method.on_step_end(0, 2)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
