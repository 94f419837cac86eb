"""MoCo v3: both views predict the other view's momentum-encoder key; negatives are in-batch."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from sslstudio.config import option
from sslstudio.core.losses.infonce import InfoNCELoss
from sslstudio.core.methods.base import (
    Batch,
    Method,
    MomentumOptions,
    ProjectionOptions,
    TemperatureOptions,
    register,
)
from sslstudio.core.models.backbones import Backbone
from sslstudio.core.models.ema import MomentumSchedule, copy_frozen, ema_update
from sslstudio.core.models.heads import ProjectionHead


@dataclass(frozen=True)
class MoCoV3Config(ProjectionOptions, MomentumOptions, TemperatureOptions):
    momentum_base: float = option(
        0.99,
        "momentum-encoder momentum at the start, rising along a cosine (paper: 0.99)",
        0.0,
        1.0,
    )
    momentum_final: float = option(1.0, "momentum at the end (paper: 1.0)", 0.0, 1.0)
    proj_hidden: int = option(
        512, "hidden width of projector and predictor (paper: 4096)", 16, 8192
    )
    proj_out: int = option(128, "output width of both heads (paper: 256)", 8, 4096)


def _mlp(dims: list[int]) -> ProjectionHead:
    """BN after every layer, ReLU after all but the last; the last BN has no learnt scale or
    shift ("all layers in both MLPs have BN", sec. 4)."""
    blocks = [
        (a, b, nn.BatchNorm1d(b), nn.ReLU(inplace=True)) for a, b in zip(dims[:-2], dims[1:-1])
    ]
    return ProjectionHead(
        [*blocks, (dims[-2], dims[-1], nn.BatchNorm1d(dims[-1], affine=False), None)]
    )


@register("mocov3")
class MoCoV3(Method):
    """MoCo v3 [0].

    - [0] Chen, Xie, He, "An Empirical Study of Training Self-Supervised Vision Transformers",
      ICCV 2021, https://arxiv.org/abs/2104.02057 ("The projection head is a 3-layer MLP, and
      the prediction head is a 2-layer MLP")
    """

    Config = MoCoV3Config
    display_name = "MoCo v3"
    distributed = True
    paper = "Chen, Xie, He 2021, https://arxiv.org/abs/2104.02057"
    paper_recipe = (
        "ResNet: LARS, weight decay 1.5e-6, τ 1.0, batch 4096; ViT: AdamW, lr 1.5e-4 per 256 "
        "images, weight decay 0.1, τ 0.2; key momentum 0.99 rising to 1"
    )
    summary = (
        "MoCo v3 shows the network two altered copies of each image. From each copy the network "
        "guesses how a slowly changing copy of itself describes the other copy, and it must pick "
        "that description out from those of the other images in the batch. It is steady and "
        "works with both convolutional networks and vision transformers; it likes larger batches."
    )

    def __init__(self, backbone: Backbone, config: MoCoV3Config) -> None:
        super().__init__(backbone, config)
        d, h, o = backbone.feature_dim, config.proj_hidden, config.proj_out
        self.projector = _mlp([d, h, h, o])
        self.predictor = _mlp([o, h, o])
        self.key_backbone = copy_frozen(backbone)
        self.key_projector = copy_frozen(self.projector)
        self.momentum = MomentumSchedule(config.momentum_base, config.momentum_final)
        self.criterion = InfoNCELoss(config.temperature)

    def on_train_start(self, num_images: int, total_steps: int) -> None:
        self.momentum.start(total_steps)

    def training_step(self, batch: Batch) -> tuple[Tensor, dict[str, float]]:
        x = torch.cat(batch.views)  # one pass over both views
        p0, p1 = self.predictor(self.projector(self.backbone(x))).chunk(2)
        with torch.no_grad():
            k0, k1 = self.key_projector(self.key_backbone(x)).chunk(2)
            at = self.ranks.rank * k0.shape[0]  # this rank's images in the global batch
            k0, k1 = self.ranks.gather(k0), self.ranks.gather(k1)  # negatives: the global batch
        # "ctr(q1, k2) + ctr(q2, k1)", each scaled by 2τ so the gradient's size does not
        # depend on τ (Algorithm 1)
        loss = self.criterion(p0, k1, offset=at) + self.criterion(p1, k0, offset=at)
        loss = loss * (2 * self.config.temperature)
        return loss, {"momentum": self.momentum.current()}

    def on_step_end(self, step: int, total_steps: int) -> None:
        m = self.momentum.advance(step, total_steps)
        ema_update(self.key_backbone, self.backbone, m)
        ema_update(self.key_projector, self.projector, m)
