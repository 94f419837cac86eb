"""Backbone registry: name -> network that maps ``(B, 3, H, W)`` to ``(B, D)`` features.

Random initialisation by default. A local weights file (safetensors, or a torchvision state
dict read with ``weights_only=True``) or torchvision's ImageNet weights (``"imagenet"``, needs
the network once; cached by torchvision) can be loaded on top.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from sslstudio.errors import WeightsError


@dataclass(frozen=True)
class BackboneInfo:
    name: str
    description: str
    feature_dim: int
    family: str  # "torchvision-resnet" | "tiny" | "timm-vit"


class Backbone(nn.Module):
    """A feature extractor with a flat output and the facts the export needs."""

    def __init__(self, body: nn.Module, info: BackboneInfo, small_stem: bool) -> None:
        super().__init__()
        self.body = body
        self.info = info
        self.small_stem = small_stem

    @property
    def feature_dim(self) -> int:
        return self.info.feature_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).flatten(1)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature map ``(B, C, h, w)`` before global pooling, for dense heads
        (colourisation's decoder); ``C == feature_dim``."""
        body = self.body
        if self.info.family == "tiny":
            return body[:-1](x)  # everything but the final AdaptiveAvgPool2d
        if self.info.family == "torchvision-resnet":
            x = body.maxpool(body.relu(body.bn1(body.conv1(x))))
            return body.layer4(body.layer3(body.layer2(body.layer1(x))))
        return body.feature_map(x)  # timm-vit: the patch tokens as a grid


def _resnet(arch: str, small_stem: bool) -> nn.Module:
    import torchvision

    net = getattr(torchvision.models, arch)(weights=None)
    if small_stem:
        # CIFAR stem (He et al. 2016, sec. 4.2; SimCLR B.9): keep resolution for <= 64 px inputs
        net.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
    net.fc = nn.Identity()
    return net


def _vit(variant: str, image_size: int) -> nn.Module:
    from sslstudio.core.models.vit import ViT  # timm is imported only when a ViT is built

    return ViT(variant, image_size)


def _tiny_cnn(small_stem: bool) -> nn.Module:
    """Four conv blocks, 128-d features: for tests and quick experiments on a CPU."""

    def block(cin: int, cout: int, stride: int) -> list[nn.Module]:
        return [
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        ]

    first_stride = 1 if small_stem else 2
    return nn.Sequential(
        *block(3, 32, first_stride),
        *block(32, 64, 2),
        *block(64, 128, 2),
        *block(128, 128, 1),
        nn.AdaptiveAvgPool2d(1),
    )


# name -> (facts, builder(small_stem, image_size)); ViTs ignore small_stem (their patch size
# follows the image size instead, see vit.vit_patch_size)
_REGISTRY: dict[str, tuple[BackboneInfo, Callable[[bool, int], nn.Module]]] = {
    "tiny_cnn": (
        BackboneInfo("tiny_cnn", "4-layer CNN (128-d): tests and quick CPU trials", 128, "tiny"),
        lambda s, _: _tiny_cnn(s),
    ),
    "resnet18": (
        BackboneInfo("resnet18", "ResNet-18 (512-d), 11 M parameters", 512, "torchvision-resnet"),
        lambda s, _: _resnet("resnet18", s),
    ),
    "resnet34": (
        BackboneInfo("resnet34", "ResNet-34 (512-d), 21 M parameters", 512, "torchvision-resnet"),
        lambda s, _: _resnet("resnet34", s),
    ),
    "resnet50": (
        BackboneInfo("resnet50", "ResNet-50 (2048-d), 24 M parameters", 2048, "torchvision-resnet"),
        lambda s, _: _resnet("resnet50", s),
    ),
    "vit_tiny": (
        BackboneInfo(
            "vit_tiny",
            "ViT-Tiny (192-d), 5.5 M parameters, patch size by image size",
            192,
            "timm-vit",
        ),
        lambda _, size: _vit("vit_tiny", size),
    ),
    "vit_small": (
        BackboneInfo(
            "vit_small",
            "ViT-Small (384-d), 22 M parameters, patch size by image size",
            384,
            "timm-vit",
        ),
        lambda _, size: _vit("vit_small", size),
    ),
}

BACKBONES = tuple(_REGISTRY)


def backbone_info(name: str) -> BackboneInfo:
    if name not in _REGISTRY:
        raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
    return _REGISTRY[name][0]


def resolve_small_stem(setting: str, image_size: int) -> bool:
    return setting == "on" or (setting == "auto" and image_size <= 64)


def build_backbone(
    name: str, *, small_stem: bool, weights: str = "", image_size: int = 224
) -> Backbone:
    """Build backbone ``name``; ``weights`` is "" (random), "imagenet", or a local file.

    ``image_size`` (the training resolution) sets a ViT's patch size and positional grid;
    convolutional backbones do not need it.
    """
    info = backbone_info(name)
    model = Backbone(_REGISTRY[name][1](small_stem, image_size), info, small_stem)
    if weights:
        load_backbone_weights(model, weights)
    return model


def load_backbone_weights(model: Backbone, weights: str) -> None:
    """Load weights into ``model.body``; a torchvision-style dict (``conv1.weight`` ...) is
    accepted."""
    if weights == "imagenet":
        state = _imagenet_state(model)
    else:
        state = read_state_dict(Path(weights))
    state = {
        k.removeprefix("module.").removeprefix("backbone.body.").removeprefix("body."): v
        for k, v in state.items()
    }
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    own = model.body.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if wrong:
            k = wrong[0]
            parts.append(
                f"{len(wrong)} of another shape (e.g. {k}: file {tuple(state[k].shape)} vs model "
                f"{tuple(own[k].shape)})"
            )
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected")
        raise WeightsError(
            f"weights {weights!r} do not fit backbone {model.info.name}: " + "; ".join(parts)
        )
    model.body.load_state_dict({k: state[k] for k in own}, strict=True)


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors from a safetensors file, or a torch file loaded with ``weights_only=True`` (never
    unpickled)."""
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return _finite(load_file(str(path)), path)
        except WeightsError:
            raise
        except Exception as exc:  # safetensors raises several types for malformed files
            raise WeightsError(
                f"weights file {path} is not a valid safetensors file: {exc}"
            ) from exc
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(
            f"refused to load {path}: it is not a plain tensor file ({type(exc).__name__}). "
            "Only safetensors or state dicts loadable with weights_only=True are accepted."
        ) from exc
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{path} does not hold a state dict of tensors")
    return _finite(obj, path)


def _finite(state: dict[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    """Weights with NaN or Inf in them would train to NaN: refused, naming the tensor."""
    for name, t in state.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise WeightsError(
                f"weights file {path} holds NaN or Inf values in {name!r}: it is damaged"
            )
    return state


def _imagenet_state(model: Backbone) -> dict[str, torch.Tensor]:
    import torchvision

    if model.info.family != "torchvision-resnet":
        raise WeightsError(f"no ImageNet weights are published for {model.info.name}")
    if model.small_stem:
        raise WeightsError("ImageNet weights need the standard stem: set small_stem to 'off'")
    enum = torchvision.models.get_model_weights(model.info.name).DEFAULT
    try:
        return enum.get_state_dict(progress=False)
    except Exception as exc:  # URLError, socket errors, ...: all mean "could not download"
        raise WeightsError(
            f"could not fetch ImageNet weights for {model.info.name} ({type(exc).__name__}); this "
            "machine "
            "looks offline. Download them elsewhere and pass the file with --weights."
        ) from exc
