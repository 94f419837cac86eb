"""BYOL: the online network predicts the target network's projection of the other view."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from sslstudio.config import option
from sslstudio.core.losses.byol import NormalizedMSELoss
from sslstudio.core.methods.base import Batch, Method, MomentumOptions, ProjectionOptions, register
from sslstudio.core.models.backbones import Backbone
from sslstudio.core.models.ema import MomentumSchedule, copy_frozen, ema_update
from sslstudio.core.models.heads import two_layer_mlp


@dataclass(frozen=True)
class BYOLConfig(MomentumOptions, ProjectionOptions):
    proj_hidden: int = option(
        512, "hidden width of projector and predictor (paper: 4096)", 16, 8192
    )
    proj_out: int = option(128, "output width of both heads (paper: 256)", 8, 4096)
    momentum_base: float = option(
        0.99,
        "target momentum at the start, rising along a cosine to the final value (paper: 0.996 "
        "for 1000 epochs; 0.99 lets the target keep up in short runs)",
        0.0,
        1.0,
    )
    momentum_final: float = option(1.0, "target momentum at the end (paper: 1.0)", 0.0, 1.0)


@register("byol")
class BYOL(Method):
    """BYOL [0].

    - [0] Grill et al., "Bootstrap Your Own Latent: A New Approach to Self-Supervised Learning",
      NeurIPS 2020, https://arxiv.org/abs/2006.07733
    """

    Config = BYOLConfig
    display_name = "BYOL"
    distributed = True
    paper = "Grill et al. 2020, https://arxiv.org/abs/2006.07733"
    paper_recipe = (
        "LARS, lr 0.2 per 256 images at batch 4096, weight decay 1.5e-6, target momentum 0.996 "
        "rising to 1, projector 4096→256, 1000 epochs"
    )
    summary = (
        "BYOL shows the network two altered copies of each image and asks it to guess, from one "
        "copy, how a slowly changing copy of itself describes the other. It never compares "
        "different images with each other, so it does not need large batches and does not push "
        "apart images that merely look alike, such as neighbouring patches of the same tissue. "
        "It starts slower than SimCLR: a few minutes on a CPU helped on tissue tiles but not yet "
        "on small natural photos, so give it a long run."
    )

    def __init__(self, backbone: Backbone, config: BYOLConfig) -> None:
        super().__init__(backbone, config)
        d, h, o = backbone.feature_dim, config.proj_hidden, config.proj_out
        self.projector = two_layer_mlp(d, h, o)
        self.predictor = two_layer_mlp(o, h, o)
        self.target_backbone = copy_frozen(backbone)
        self.target_projector = copy_frozen(self.projector)
        self.momentum = MomentumSchedule(config.momentum_base, config.momentum_final)
        self.criterion = NormalizedMSELoss()

    def on_train_start(self, num_images: int, total_steps: int) -> None:
        self.momentum.start(total_steps)

    def training_step(self, batch: Batch) -> tuple[Tensor, dict[str, float]]:
        x = torch.cat(batch.views)  # one pass over both views
        p0, p1 = self.predictor(self.projector(self.backbone(x))).chunk(2)
        with torch.no_grad():
            z0, z1 = self.target_projector(self.target_backbone(x)).chunk(2)
        # "we symmetrize the loss [...] by separately feeding v′ to the online network and v to
        # the target network": L + L̃ (eq. 2), between 0 and 8
        loss = self.criterion(p0, z1) + self.criterion(p1, z0)
        return loss, {"momentum": self.momentum.current()}

    def on_step_end(self, step: int, total_steps: int) -> None:
        m = self.momentum.advance(step, total_steps)
        ema_update(self.target_backbone, self.backbone, m)
        ema_update(self.target_projector, self.projector, m)
