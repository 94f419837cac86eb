import pytest
import torch
import torchvision
from safetensors.torch import save_file

from sslstudio.core.models import backbones
from sslstudio.core.models.backbones import BACKBONES, build_backbone, resolve_small_stem
from sslstudio.errors import WeightsError


@pytest.mark.parametrize("name", BACKBONES)
@pytest.mark.parametrize("small", [True, False])
def test_feature_shapes(name, small):
    net = build_backbone(name, small_stem=small).eval()
    size = 32 if small else 64
    out = net(torch.randn(2, 3, size, size))
    assert out.shape == (2, net.feature_dim)


def test_small_stem_keeps_resolution():
    assert resolve_small_stem("auto", 64) and not resolve_small_stem("auto", 96)
    assert resolve_small_stem("on", 224) and not resolve_small_stem("off", 32)
    net = build_backbone("resnet18", small_stem=True)
    assert net.body.conv1.stride == (1, 1) and isinstance(net.body.maxpool, torch.nn.Identity)


def test_torchvision_state_dict_loads(tmp_path):
    ref = torchvision.models.resnet18(weights=None)
    torch.save(
        ref.state_dict(), tmp_path / "r18.pth"
    )  # a plain tensor dict: weights_only=True reads it
    net = build_backbone("resnet18", small_stem=False, weights=str(tmp_path / "r18.pth"))
    assert torch.equal(net.body.conv1.weight, ref.conv1.weight)
    save_file(
        {k: v.contiguous() for k, v in ref.state_dict().items()}, str(tmp_path / "r18.safetensors")
    )
    net2 = build_backbone("resnet18", small_stem=False, weights=str(tmp_path / "r18.safetensors"))
    assert torch.equal(net2.body.layer4[1].conv2.weight, ref.layer4[1].conv2.weight)


def test_wrong_architecture_weights_name_the_difference(tmp_path):
    ref = torchvision.models.resnet18(weights=None)
    torch.save(ref.state_dict(), tmp_path / "r18.pth")
    with pytest.raises(WeightsError, match=r"of another shape \(e\.g\. conv1\.weight"):
        build_backbone("resnet18", small_stem=True, weights=str(tmp_path / "r18.pth"))
    with pytest.raises(WeightsError, match="do not fit backbone resnet50"):
        build_backbone("resnet50", small_stem=False, weights=str(tmp_path / "r18.pth"))


def test_malicious_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    torch.save({"conv1.weight": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(WeightsError, match="refused to load"):
        build_backbone("tiny_cnn", small_stem=True, weights=str(tmp_path / "evil.pt"))
    assert not marker.exists()


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\x00" * 7,
        (10**12).to_bytes(8, "little") + b"{}",
        b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}     ",
    ],
)
def test_malformed_safetensors_is_a_clear_error(tmp_path, payload):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(payload)
    with pytest.raises(WeightsError, match="not a valid safetensors file"):
        build_backbone("tiny_cnn", small_stem=True, weights=str(path))


def test_missing_file_and_offline_imagenet(tmp_path, monkeypatch):
    with pytest.raises(WeightsError, match="does not exist"):
        build_backbone("tiny_cnn", small_stem=True, weights=str(tmp_path / "nope.safetensors"))

    def offline(*a, **k):
        raise OSError("Temporary failure in name resolution")

    monkeypatch.setattr(
        torchvision.models.ResNet18_Weights.IMAGENET1K_V1.__class__, "get_state_dict", offline
    )
    with pytest.raises(WeightsError, match="looks offline"):
        build_backbone("resnet18", small_stem=False, weights="imagenet")
    with pytest.raises(WeightsError, match="standard stem"):
        build_backbone("resnet18", small_stem=True, weights="imagenet")
    with pytest.raises(WeightsError, match="no ImageNet weights"):
        build_backbone("tiny_cnn", small_stem=False, weights="imagenet")


def test_unknown_backbone():
    with pytest.raises(ValueError, match="unknown backbone"):
        backbones.backbone_info("vgg99")
