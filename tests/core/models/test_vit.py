import pytest
import torch

from sslstudio.core.models.backbones import build_backbone
from sslstudio.core.models.vit import vit_patch_size


def test_patch_size_follows_the_image_size():
    assert [vit_patch_size(s) for s in (16, 32, 33, 64, 96, 97, 224)] == [4, 4, 8, 8, 8, 16, 16]


@pytest.fixture(scope="module")
def vit():
    torch.manual_seed(0)
    return build_backbone("vit_tiny", small_stem=True, image_size=32).eval()


def test_vit_takes_two_input_sizes(vit):
    """Multi-crop: global 32 px views and local 16 px views go through the same network."""
    with torch.no_grad():
        big, small = vit(torch.randn(2, 3, 32, 32)), vit(torch.randn(2, 3, 16, 16))
        maps = vit.forward_features(torch.randn(2, 3, 16, 16))
    assert big.shape == small.shape == (2, vit.feature_dim) == (2, 192)
    assert torch.isfinite(small).all()
    assert maps.shape == (2, 192, 4, 4)  # 16 px / patch 4


def test_encoding_a_token_subset_matches_the_plain_forward(vit):
    """MAE runs the encoder on chosen tokens: with all of them it must equal the ViT's own
    forward."""
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        tokens, grid = vit.body.patch_tokens(x)
        assert grid == (8, 8) and tokens.shape == (2, 64, 192)
        assert torch.allclose(vit.body.encode(tokens)[:, 0], vit(x), atol=1e-5)
        assert vit.body.encode(tokens[:, :16]).shape == (2, 17, 192)  # class token + 16 kept


@pytest.mark.parametrize("name", ["tiny_cnn", "resnet18"])
def test_feature_map_pools_to_the_features(name):
    net = build_backbone(name, small_stem=True).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        fmap = net.forward_features(x)
        assert fmap.ndim == 4 and fmap.shape[1] == net.feature_dim
        assert torch.allclose(fmap.mean(dim=(2, 3)), net(x), atol=1e-5)
