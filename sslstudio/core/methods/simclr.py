"""SimCLR: two views per image, NT-Xent with the rest of the batch as negatives."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from sslstudio.config import option
from sslstudio.core.losses.ntxent import NTXentLoss
from sslstudio.core.methods.base import (
    Batch,
    Method,
    ProjectionOptions,
    TemperatureOptions,
    register,
)
from sslstudio.core.models.backbones import Backbone
from sslstudio.core.models.heads import simclr_head


@dataclass(frozen=True)
class SimCLRConfig(ProjectionOptions, TemperatureOptions):
    temperature: float = option(0.2, "NT-Xent temperature τ; lower = sharper", 0.01, 2.0)
    proj_layers: int = option(2, "linear layers in the projection head", 1, 4)


@register("simclr")
class SimCLR(Method):
    """SimCLR [0].

    - [0] Chen, Kornblith, Norouzi, Hinton, "A Simple Framework for Contrastive Learning of
      Visual Representations", ICML 2020, https://arxiv.org/abs/2002.05709
    """

    Config = SimCLRConfig
    display_name = "SimCLR"
    distributed = True
    paper = "Chen et al. 2020, https://arxiv.org/abs/2002.05709"
    paper_recipe = (
        "LARS, lr 0.3 per 256 images at batch 4096, weight decay 1e-6, τ 0.1-0.5, 10 warm-up "
        "epochs, 100-1000 epochs"
    )
    summary = (
        "SimCLR shows the network two randomly altered copies of each image and teaches it to "
        "recognise that they belong together, while telling them apart from every other image "
        "in the batch. It is simple and dependable, and it benefits from large batches and "
        "strong augmentations: what the augmentations change is what the features learn to ignore."
    )

    def __init__(self, backbone: Backbone, config: SimCLRConfig) -> None:
        super().__init__(backbone, config)
        self.head = simclr_head(
            backbone.feature_dim, config.proj_hidden, config.proj_out, config.proj_layers
        )
        self.criterion = NTXentLoss(config.temperature)

    def training_step(self, batch: Batch) -> tuple[Tensor, dict[str, float]]:
        z = self.head(
            self.backbone(torch.cat(batch.views))
        )  # one pass over both views: shared BN statistics
        z0, z1 = z.chunk(2)
        return self.criterion(z0, z1, self.ranks.gather_with_grad), {}
