"""W-MSE: whiten each view's embeddings over the batch, then pull matching views together."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from sslstudio.config import option
from sslstudio.core.losses.wmse import WMSELoss
from sslstudio.core.methods.base import Batch, Method, ProjectionOptions, register
from sslstudio.core.models.backbones import Backbone
from sslstudio.core.models.heads import ProjectionHead


@dataclass(frozen=True)
class WMSEConfig(ProjectionOptions):
    proj_hidden: int = option(512, "hidden width of the projector (paper: 1024)", 16, 8192)
    proj_out: int = option(
        32, "width of the whitened embedding (paper: 64); keep it at most half of w_size", 2, 1024
    )
    w_size: int = option(
        64,
        "images whitened together (paper: 128, twice the embedding width); capped by the batch,"
        " so the batch should be at least this large",
        2,
        8192,
    )
    w_iter: int = option(
        1, "splits of the batch into whitening groups per step (paper: 1-4)", 1, 16
    )
    eps: float = option(
        1e-3,
        "shrinkage of each covariance towards the identity: keeps whitening finite when a group"
        " is smaller than the embedding width (paper: 0)",
        0.0,
        0.5,
    )


@register("wmse")
class WMSE(Method):
    """W-MSE [0].

    - [0] Ermolov, Siarohin, Sangineto, Sebe, "Whitening for Self-Supervised Representation
      Learning", ICML 2021, https://arxiv.org/abs/2007.06346
    """

    Config = WMSEConfig
    display_name = "W-MSE"
    distributed = True
    paper = "Ermolov et al. 2021, https://arxiv.org/abs/2007.06346"
    paper_recipe = (
        "Adam, lr about 1e-3, weight decay 1e-6, whitening sub-batches of 128, a 64-dimensional "
        "embedding, batch 1024"
    )
    summary = (
        "W-MSE shows the network two altered copies of each image and pulls their descriptions "
        "together, after first spreading the descriptions of each batch evenly in every "
        "direction, so the network cannot cheat by describing every image the same way. It needs "
        "no comparisons between pairs of images and no second network, but the batch must be "
        "clearly larger than the description is long."
    )

    def __init__(self, backbone: Backbone, config: WMSEConfig) -> None:
        super().__init__(backbone, config)
        d, h, o = backbone.feature_dim, config.proj_hidden, config.proj_out
        self.projector = ProjectionHead(
            [(d, h, nn.BatchNorm1d(h), nn.ReLU(inplace=True)), (h, o, None, None)]
        )
        self.criterion = WMSELoss(w_size=config.w_size, w_iter=config.w_iter, eps=config.eps)

    def training_step(self, batch: Batch) -> tuple[Tensor, dict[str, float]]:
        x = torch.cat(batch.views)  # one pass over both views
        z0, z1 = self.projector(self.backbone(x)).chunk(2)
        # whitening groups are drawn from the global batch: every rank computes the whole loss
        # on every rank's embeddings (gathered with their gradients)
        (z0, _), (z1, _) = self.ranks.gather_with_grad(z0), self.ranks.gather_with_grad(z1)
        return self.criterion(z0, z1), {}
