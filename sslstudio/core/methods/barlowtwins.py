"""Barlow Twins: the two views' embeddings should correlate dimension by dimension, and only so."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from sslstudio.config import option
from sslstudio.core.losses.barlow import BarlowTwinsLoss
from sslstudio.core.methods.base import Batch, Method, register
from sslstudio.core.models.backbones import Backbone
from sslstudio.core.models.heads import ProjectionHead


@dataclass(frozen=True)
class BarlowTwinsConfig:
    lambda_offdiag: float = option(
        5e-3, "weight of the redundancy term (off-diagonal correlations; paper: 0.005)", 0.0, 1.0
    )
    proj_hidden: int = option(512, "hidden width of the projector (paper: 8192)", 16, 16384)
    proj_out: int = option(512, "output width of the projector (paper: 8192)", 8, 16384)


@register("barlowtwins")
class BarlowTwins(Method):
    """Barlow Twins [0].

    - [0] Zbontar, Jing, Misra, LeCun, Deny, "Barlow Twins: Self-Supervised Learning via
      Redundancy Reduction", ICML 2021, https://arxiv.org/abs/2103.03230 ("The projector network
      has three linear layers, each with 8192 output units. The first two layers of the
      projector are followed by a batch normalization layer and rectified linear units.")
    """

    Config = BarlowTwinsConfig
    display_name = "Barlow Twins"
    distributed = True
    paper = "Zbontar et al. 2021, https://arxiv.org/abs/2103.03230"
    paper_recipe = (
        "LARS, lr 0.2 for weights and 0.0048 for biases and norms (per 256 images), weight decay "
        "1.5e-6, batch 2048, projector 8192-8192-8192, λ 0.005, 1000 epochs"
    )
    summary = (
        "Barlow Twins shows the network two altered copies of each image and asks that each of "
        "its output numbers rise and fall together across the two copies, while different "
        "numbers carry different information. It needs no comparisons between images and no "
        "second network, and works with modest batches; it benefits from a wide final layer."
    )

    def __init__(self, backbone: Backbone, config: BarlowTwinsConfig) -> None:
        super().__init__(backbone, config)
        d, h, o = backbone.feature_dim, config.proj_hidden, config.proj_out
        relu = nn.ReLU
        self.projector = ProjectionHead(
            [
                (d, h, nn.BatchNorm1d(h), relu()),
                (h, h, nn.BatchNorm1d(h), relu()),
                (h, o, None, None),
            ]
        )
        self.criterion = BarlowTwinsLoss(config.lambda_offdiag)

    def training_step(self, batch: Batch) -> tuple[Tensor, dict[str, float]]:
        x = torch.cat(batch.views)  # one pass over both views
        z0, z1 = self.projector(self.backbone(x)).chunk(2)
        # the cross-correlation is over the global batch: every rank computes the whole loss
        # on every rank's embeddings (gathered with their gradients)
        (z0, _), (z1, _) = self.ranks.gather_with_grad(z0), self.ranks.gather_with_grad(z1)
        return self.criterion(z0, z1), {}
