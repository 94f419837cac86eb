"""NNCLR: the positive of a view is the nearest neighbour of its embedding in a support set."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sslstudio.config import option
from sslstudio.core.losses.infonce import InfoNCELoss
from sslstudio.core.methods.base import Batch, Method, register
from sslstudio.core.models.backbones import Backbone
from sslstudio.core.models.heads import ProjectionHead, two_layer_mlp
from sslstudio.core.models.queue import FeatureQueue


@dataclass(frozen=True)
class NNCLRConfig:
    temperature: float = option(0.1, "InfoNCE temperature τ (paper: 0.1)", 0.01, 2.0)
    support_size: int = option(
        8192,
        "past embeddings searched for neighbours (paper: 98304); capped at half the folder's "
        "images",
        16,
        262144,
    )
    proj_hidden: int = option(512, "hidden width of the projector (paper: 2048)", 16, 8192)
    proj_out: int = option(128, "output width of both heads (paper: 256)", 8, 4096)
    pred_hidden: int = option(512, "hidden width of the predictor (paper: 4096)", 16, 8192)


@register("nnclr")
class NNCLR(Method):
    """NNCLR [0].

    - [0] Dwibedi, Aytar, Tompson, Sermanet, Zisserman, "With a Little Help from My Friends:
      Nearest-Neighbor Contrastive Learning of Visual Representations", ICCV 2021,
      https://arxiv.org/abs/2104.14548
    """

    Config = NNCLRConfig
    display_name = "NNCLR"
    distributed = True
    paper = "Dwibedi et al. 2021, https://arxiv.org/abs/2104.14548"
    paper_recipe = (
        "LARS, batch 4096, weight decay 1e-6, τ 0.1, a support set of 98,304 embeddings, 1000 "
        "epochs"
    )
    summary = (
        "NNCLR teaches the network that an image belongs with the most similar image it has seen "
        "recently, not only with an altered copy of itself. Each image is paired with its closest "
        "match from a running list of past images and must pick that match out from the rest of "
        "the batch. Pairs of different but alike images can teach more than alterations alone, "
        "which helps when strong alterations would destroy what matters in the tissue."
    )

    def __init__(self, backbone: Backbone, config: NNCLRConfig) -> None:
        super().__init__(backbone, config)
        d, h, o, ph = backbone.feature_dim, config.proj_hidden, config.proj_out, config.pred_hidden
        relu = nn.ReLU
        self.projector = ProjectionHead(
            [
                (d, h, nn.BatchNorm1d(h), relu()),
                (h, h, nn.BatchNorm1d(h), relu()),
                (h, o, nn.BatchNorm1d(o), None),
            ]
        )
        self.predictor = two_layer_mlp(o, ph, o)
        self.support = FeatureQueue(config.support_size, o)
        self.criterion = InfoNCELoss(config.temperature)
        self._z0: Tensor | None = None  # this step's projections, queued once the step is done

    def on_train_start(self, num_images: int, total_steps: int) -> None:
        self.support.cap(num_images // 2)

    @torch.no_grad()
    def nearest(self, z: Tensor) -> Tensor:
        """``(N, D)`` unit vectors: each row's nearest (cosine) filled row of the support set;
        the row itself while the set is still empty (the first step)."""
        bank = self.support.contents()  # (L, D) unit rows
        sims = F.normalize(z.float(), dim=1) @ bank.T  # (N, L)
        sims = sims.masked_fill(~self.support.valid(), float("-inf"))  # skip the random start
        found = bank[sims.argmax(dim=1)]  # (N, D)
        return torch.where(self.support.filled > 0, found, F.normalize(z.float(), dim=1))

    def training_step(self, batch: Batch) -> tuple[Tensor, dict[str, float]]:
        z = self.projector(self.backbone(torch.cat(batch.views)))  # one pass over both views
        p0, p1 = self.predictor(z).chunk(2)
        z0, z1 = z.chunk(2)
        # "NN(z_i, Q) · p_i⁺ / τ" against the other images' predictions, symmetrised (eq. 2);
        # the other images are the global batch's (gathered with their gradients)
        (g1, at), (g0, _) = self.ranks.gather_with_grad(p1), self.ranks.gather_with_grad(p0)
        loss = (
            self.criterion(self.nearest(z0), g1, offset=at)
            + self.criterion(self.nearest(z1), g0, offset=at)
        ) / 2
        self._z0 = self.ranks.gather(z0)  # the support set is fed from every rank
        return loss, {}

    def on_step_end(self, step: int, total_steps: int) -> None:
        if self._z0 is not None:
            self.support.enqueue(self._z0)
            self._z0 = None
