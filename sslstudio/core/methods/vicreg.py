"""VICReg: views agree, every output dimension keeps its spread, dimensions stay uncorrelated."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from sslstudio.config import option
from sslstudio.core.losses.vicreg import VICRegLoss
from sslstudio.core.methods.base import Batch, Method, register
from sslstudio.core.models.backbones import Backbone
from sslstudio.core.models.heads import ProjectionHead


@dataclass(frozen=True)
class VICRegConfig:
    invariance: float = option(25.0, "weight λ of view agreement (paper: 25)", 0.0, 1000.0)
    variance: float = option(
        25.0, "weight μ of keeping each dimension spread out (paper: 25)", 0.0, 1000.0
    )
    covariance: float = option(1.0, "weight ν of decorrelating dimensions (paper: 1)", 0.0, 1000.0)
    std_target: float = option(1.0, "spread γ each dimension should reach (paper: 1)", 0.01, 100.0)
    eps: float = option(1e-4, "ε inside the square root of the variance (paper: 1e-4)", 1e-8, 1.0)
    proj_hidden: int = option(512, "hidden width of the expander (paper: 8192)", 16, 16384)
    proj_out: int = option(512, "output width of the expander (paper: 8192)", 8, 16384)


@register("vicreg")
class VICReg(Method):
    """VICReg [0].

    - [0] Bardes, Ponce, LeCun, "VICReg: Variance-Invariance-Covariance Regularization for
      Self-Supervised Learning", ICLR 2022, https://arxiv.org/abs/2105.04906 ("The expander has
      three fully-connected layers [...] The first two layers are followed by a batch
      normalization layer and rectified linear units.")
    """

    Config = VICRegConfig
    display_name = "VICReg"
    distributed = True
    paper = "Bardes, Ponce, LeCun 2022, https://arxiv.org/abs/2105.04906"
    paper_recipe = (
        "LARS, lr 0.2 per 256 images at batch 2048, weight decay 1e-6, λ = μ = 25, ν = 1, "
        "projector 8192-8192-8192, 1000 epochs"
    )
    summary = (
        "VICReg shows the network two altered copies of each image and asks three things: that "
        "the two copies get similar descriptions, that the descriptions of different images stay "
        "varied, and that each part of a description says something the other parts do not. "
        "Each of the three can be weighted separately, which makes its behaviour easy to reason "
        "about; it needs no comparisons between images and no second network."
    )

    def __init__(self, backbone: Backbone, config: VICRegConfig) -> None:
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
        self.criterion = VICRegLoss(
            invariance=config.invariance,
            variance=config.variance,
            covariance=config.covariance,
            std_target=config.std_target,
            eps=config.eps,
        )

    def training_step(self, batch: Batch) -> tuple[Tensor, dict[str, float]]:
        x = torch.cat(batch.views)  # one pass over both views
        z0, z1 = self.projector(self.backbone(x)).chunk(2)
        # variance and covariance are over the global batch: every rank computes the whole
        # loss on every rank's embeddings (gathered with their gradients)
        (z0, _), (z1, _) = self.ranks.gather_with_grad(z0), self.ranks.gather_with_grad(z1)
        return self.criterion(z0, z1), {}
