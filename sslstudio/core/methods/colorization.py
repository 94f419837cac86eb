"""Colourisation: from the lightness of an image, predict its colours (as ab bins)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sslstudio.config import RunConfig, option
from sslstudio.core.losses.colorization import ColorizationLoss
from sslstudio.core.methods.base import Batch, Method, register
from sslstudio.core.models.backbones import Backbone
from sslstudio.core.transforms.lab import rgb_to_lab
from sslstudio.core.transforms.views import MEAN, STD, ViewSpec


@dataclass(frozen=True)
class ColorizationConfig:
    out_stride: int = option(
        4, "colours are predicted at 1/out_stride of the image side; paper: 4", 1, 32
    )
    decoder_width: int = option(128, "channels of the upsampling decoder", 8, 2048)
    ab_grid: float = option(10.0, "side of a colour bin in ab units; paper: 10", 2.0, 50.0)
    neighbours: int = option(5, "nearest bins sharing each true colour (soft encoding)", 1, 32)
    sigma: float = option(5.0, "Gaussian width of the soft encoding, in ab units", 0.5, 50.0)


def lightness(views: Tensor) -> tuple[Tensor, Tensor]:
    """ImageNet-normalised views ``(B, 3, H, W)`` -> the network input (L scaled to [-1, 1],
    repeated on 3 channels so any backbone takes it) and the views' Lab ``(B, 3, H, W)``."""
    mean = torch.tensor(MEAN, device=views.device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=views.device).view(1, 3, 1, 1)
    lab = rgb_to_lab((views.float() * std + mean).clamp(0, 1))  # undo the views' normalisation
    return (lab[:, :1] / 50 - 1).expand(-1, 3, -1, -1).contiguous(), lab


@register("colorization")
class Colorization(Method):
    """Colourful image colourisation [0] as a pretext task.

    The backbone sees only lightness, so ``embed`` converts images the same way.

    - [0] Zhang, Isola, Efros, "Colorful Image Colorization", ECCV 2016,
      https://arxiv.org/abs/1603.08511
    """

    Config = ColorizationConfig
    display_name = "Colorization"
    distributed = True
    paper = "Zhang et al. 2016, https://arxiv.org/abs/1603.08511"
    paper_recipe = (
        "Adam (β 0.9, 0.99), lr 3e-5, weight decay 1e-3, 313 colour bins with class rebalancing, "
        "224 px"
    )
    summary = (
        "Colourisation shows the network a black-and-white version of each image and trains it "
        "to guess the original colours, pixel by pixel. To guess well it must recognise what it "
        "is looking at: in stained tissue, which structures take up which stain. Colour changes "
        "are switched off in the augmentation, because the colours are the answer. It suits "
        "stained tissue; on small natural photos a short run did not beat the untrained network."
    )
    constraints = {"jitter_p": 0.0, "grey_p": 0.0, "hed_p": 0.0}

    def __init__(self, backbone: Backbone, config: ColorizationConfig) -> None:
        super().__init__(backbone, config)
        self.criterion = ColorizationLoss(config.ab_grid, config.neighbours, config.sigma)
        w = config.decoder_width
        self.decoder = nn.Sequential(  # runs on the feature map upsampled to the output size
            nn.Conv2d(backbone.feature_dim, w, 3, padding=1, bias=False),
            nn.BatchNorm2d(w),
            nn.ReLU(inplace=True),
            nn.Conv2d(w, w, 3, padding=1, bias=False),
            nn.BatchNorm2d(w),
            nn.ReLU(inplace=True),
            nn.Conv2d(w, self.criterion.num_bins, 1),  # one logit per ab bin
        )

    def view_specs(self, cfg: RunConfig) -> list[ViewSpec]:
        return [ViewSpec(cfg.augment, cfg.image_size, count=1)]

    def training_step(self, batch: Batch) -> tuple[Tensor, dict[str, float]]:
        x, lab = lightness(batch.views[0])
        out = max(1, x.shape[-1] // self.config.out_stride)
        feats = self.backbone.forward_features(x)  # (B, C, h, w), h = S / backbone stride
        feats = F.interpolate(feats, size=(out, out), mode="bilinear", align_corners=False)
        logits = self.decoder(feats)  # (B, Q, out, out)
        ab = F.adaptive_avg_pool2d(lab[:, 1:], out)  # (B, 2, out, out): true colours at that size
        return self.criterion(logits, ab), {}

    def embed(self, images: Tensor) -> Tensor:
        return self.backbone(lightness(images)[0])
