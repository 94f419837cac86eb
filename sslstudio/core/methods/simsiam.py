"""SimSiam: one view's prediction regresses onto the other view's projection, which is held
still."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from sslstudio.config import option
from sslstudio.core.losses.byol import NegativeCosineLoss
from sslstudio.core.methods.base import Batch, Method, ProjectionOptions, register
from sslstudio.core.models.backbones import Backbone
from sslstudio.core.models.heads import ProjectionHead, two_layer_mlp


@dataclass(frozen=True)
class SimSiamConfig(ProjectionOptions):
    proj_hidden: int = option(512, "hidden width of the projector (paper: 2048)", 16, 8192)
    proj_out: int = option(512, "output width of projector and predictor (paper: 2048)", 8, 8192)
    pred_hidden: int = option(
        128,
        "the predictor's bottleneck; keep it about a quarter of the output width (paper: 512)",
        8,
        8192,
    )


@register("simsiam")
class SimSiam(Method):
    """SimSiam [0].

    - [0] Chen & He, "Exploring Simple Siamese Representation Learning", CVPR 2021,
      https://arxiv.org/abs/2011.10566 ("The projection MLP has BN applied to each fully-connected
      layer, including its output fc. [...] The prediction MLP has BN applied to its hidden fc
      layers. Its output fc does not have BN or ReLU.")
    """

    Config = SimSiamConfig
    display_name = "SimSiam"
    distributed = True
    paper = "Chen & He 2021, https://arxiv.org/abs/2011.10566"
    paper_recipe = (
        "SGD, lr 0.05 per 256 images, weight decay 1e-4, batch 512, the predictor at a fixed "
        "learning rate, 100-800 epochs"
    )
    summary = (
        "SimSiam shows the network two altered copies of each image and asks it to guess, from "
        "one copy, how it describes the other, while the answer it is steering towards is held "
        "still for that step. It needs no comparisons between images, no second network and no "
        "large batches, which makes it the lightest of these methods to run. It can stall on "
        "small or very uniform folders; the collapse warning shows when that happens."
    )

    def __init__(self, backbone: Backbone, config: SimSiamConfig) -> None:
        super().__init__(backbone, config)
        d, h, o, ph = backbone.feature_dim, config.proj_hidden, config.proj_out, config.pred_hidden
        relu = nn.ReLU
        self.projector = ProjectionHead(
            [
                (d, h, nn.BatchNorm1d(h), relu()),
                (h, h, nn.BatchNorm1d(h), relu()),
                (h, o, nn.BatchNorm1d(o, affine=False), None),
            ]
        )
        self.predictor = two_layer_mlp(o, ph, o)
        self.criterion = NegativeCosineLoss()

    def training_step(self, batch: Batch) -> tuple[Tensor, dict[str, float]]:
        z = self.projector(self.backbone(torch.cat(batch.views)))  # one pass over both views
        p0, p1 = self.predictor(z).chunk(2)
        z0, z1 = z.detach().chunk(2)  # stop-gradient: the targets are held still (eq. 2)
        loss = (self.criterion(p0, z1) + self.criterion(p1, z0)) / 2
        return loss, {}
