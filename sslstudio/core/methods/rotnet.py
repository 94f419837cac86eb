"""RotNet: predict which of four rotations was applied to an image."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from sslstudio.config import RunConfig, option
from sslstudio.core.methods.base import Batch, Method, register
from sslstudio.core.models.backbones import Backbone
from sslstudio.core.models.heads import simclr_head
from sslstudio.core.transforms.views import ViewSpec


def rotations(x: Tensor) -> tuple[Tensor, Tensor]:
    """Every image at 0, 90, 180 and 270 degrees.

    Args: x ``(B, C, S, S)`` square views.
    Returns: ``(4B, C, S, S)`` rotated images (all of rotation 0 first, then 90, ...) and their
    labels ``(4B,)`` in 0..3 (quarter turns counter-clockwise).
    """
    rotated = torch.cat([torch.rot90(x, k, dims=(2, 3)) for k in range(4)])  # (4B, C, S, S)
    labels = torch.arange(4, device=x.device).repeat_interleave(x.shape[0])  # (4B,)
    return rotated, labels


@dataclass(frozen=True)
class RotNetConfig:
    head_hidden: int = option(256, "hidden width of the classifier (0 = linear)", 0, 8192)


@register("rotnet")
class RotNet(Method):
    """RotNet [0]: "we propose to learn image features by training ConvNets to recognize the 2d
    rotation that is applied to the image that it gets as input". All four rotations of each
    image go into the same batch, as the paper found best.

    - [0] Gidaris, Singh, Komodakis, "Unsupervised Representation Learning by Predicting Image
      Rotations", ICLR 2018, https://arxiv.org/abs/1803.07728
    """

    Config = RotNetConfig
    display_name = "RotNet"
    distributed = True
    paper = "Gidaris et al. 2018, https://arxiv.org/abs/1803.07728"
    paper_recipe = (
        "SGD with momentum 0.9, lr 0.1 with step decays, weight decay 5e-4, all four rotations of "
        "every image in each batch"
    )
    summary = (
        "RotNet turns each image by 0, 90, 180 and 270 degrees and trains the network to tell "
        "which turn it sees. To answer, the network must recognise objects and which way is up. "
        "It is a simple, older pretext task: useful where images have a natural orientation, "
        "weak where they do not (many tissue sections look alike in every direction)."
    )
    # random 90-degree rotations in the augmentation would make the label ambiguous
    constraints = {"rot90_p": 0.0}

    def __init__(self, backbone: Backbone, config: RotNetConfig) -> None:
        super().__init__(backbone, config)
        layers = 2 if config.head_hidden else 1
        self.head = simclr_head(backbone.feature_dim, config.head_hidden or 4, 4, layers)

    def view_specs(self, cfg: RunConfig) -> list[ViewSpec]:
        return [ViewSpec(cfg.augment, cfg.image_size, count=1)]

    def training_step(self, batch: Batch) -> tuple[Tensor, dict[str, float]]:
        x, labels = rotations(batch.views[0])
        logits = self.head(self.backbone(x))  # (4B, 4)
        return F.cross_entropy(logits, labels), {}
