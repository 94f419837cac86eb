import pytest
import torch

from sslstudio.core.methods import Batch
from sslstudio.errors import ConfigError
from tests.core.methods.conftest import views_for


def test_mae_refuses_a_convolutional_backbone(make_method):
    with pytest.raises(ConfigError, match="choose the backbone vit_tiny or vit_small"):
        make_method("mae", backbone="tiny_cnn")


def test_encoder_sees_only_the_visible_quarter_and_loss_is_finite(make_method):
    method, cfg = make_method("mae", backbone="vit_tiny")
    views = views_for(method, cfg)
    assert len(views) == 1 and method.constraints["jitter_p"] == 0.0
    seen = []
    method.backbone.body.blocks[0].register_forward_hook(
        lambda m, inp, out: seen.append(inp[0].shape)
    )
    loss, _ = method.training_step(Batch(views))
    loss.backward()
    assert seen == [torch.Size([8, 1 + 4, 192])]  # 16 px / patch 4 = 16 patches, 25 % kept
    assert torch.isfinite(loss) and method.mask_token.grad is not None


def test_masks_depend_on_the_step_only(make_method):
    """Resume is exact: a mask is drawn from (seed, step), not from the global generator."""
    method, _ = make_method("mae", backbone="vit_tiny")
    a = method.mask_noise(2, 16, torch.device("cpu"))
    torch.rand(5)
    assert torch.equal(a, method.mask_noise(2, 16, torch.device("cpu")))
    method.on_step_end(0, 10)
    assert not torch.equal(a, method.mask_noise(2, 16, torch.device("cpu")))


def test_mae_with_a_resnet_is_refused_before_any_scan_or_run_folder(tmp_path, monkeypatch):
    """Method and backbone are checked up front: no scan of a big folder, no empty run folder."""
    from sslstudio.core.data import scan
    from sslstudio.core.train.trainer import train
    from sslstudio.errors import ConfigError
    from tests.shapes import tiny_config

    scanned = []
    monkeypatch.setattr(scan, "scan_folder", lambda *a, **k: scanned.append(a))
    (tmp_path / "images").mkdir()
    cfg = tiny_config(tmp_path / "images", tmp_path / "run", method="mae", backbone="resnet18")
    with pytest.raises(
        ConfigError, match="mae cannot use the backbone resnet18: choose one of vit_small, vit_tiny"
    ):
        next(train(cfg))
    assert not scanned and not (tmp_path / "run").exists()


def test_features_pool_the_patch_tokens_which_the_loss_trains_not_the_class_token(make_method):
    method, cfg = make_method("mae", backbone="vit_tiny")
    method.eval()
    x = views_for(method, cfg)[0]
    tokens = []
    method.backbone.body.norm.register_forward_hook(lambda m, inp, out: tokens.append(out))
    feats = method.embed(x)
    (encoded,) = tokens  # (B, 1 + N, D) after the final norm, class token first
    assert feats.shape == (x.shape[0], 192)
    assert torch.allclose(feats, encoded[:, 1:].mean(dim=1), atol=1e-6)
    assert not torch.allclose(feats, encoded[:, 0], atol=1e-3)  # not the class token
