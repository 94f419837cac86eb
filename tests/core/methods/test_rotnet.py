import torch

from sslstudio.config import AugmentConfig
from sslstudio.core.methods import Batch
from sslstudio.core.methods.rotnet import rotations
from sslstudio.core.train import trainer
from tests.core.methods.conftest import views_for
from tests.shapes import tiny_config


def test_backbone_and_head_see_all_four_rotations(make_method):
    method, cfg = make_method("rotnet")
    (x,) = views_for(method, cfg)
    seen = []
    method.backbone.register_forward_hook(lambda m, inp, out: seen.append(inp[0]))
    loss, _ = method.training_step(Batch([x]))
    batch = seen[0]  # (4B, 3, S, S)
    assert batch.shape[0] == 4 * x.shape[0]
    for k in range(4):
        assert torch.equal(batch[k * 8 : (k + 1) * 8], torch.rot90(x, k, dims=(2, 3)))
    _, labels = rotations(x)
    assert labels.tolist() == [0] * 8 + [1] * 8 + [2] * 8 + [3] * 8
    assert 0 < loss.item() < 3


def test_trainer_pipeline_never_rotates_for_rotnet(tiny_folder, tmp_path, monkeypatch):
    made = []

    class Recording(trainer.ViewPipeline):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(trainer, "ViewPipeline", Recording)
    cfg = tiny_config(
        tiny_folder,
        tmp_path / "run",
        method="rotnet",
        max_steps=1,
        monitor_every=0,
        augment=AugmentConfig(rot90_p=1.0),
    )
    list(trainer.train(cfg))
    assert made and all(s.augment.rot90_p == 0.0 for p in made for s in p.specs)
