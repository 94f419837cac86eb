"""SwAV: online clustering with swapped prediction over multi-crop views."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sslstudio.config import RunConfig, option
from sslstudio.core.losses.swav import SwAVLoss
from sslstudio.core.methods.base import Batch, Method, register
from sslstudio.core.models.backbones import Backbone
from sslstudio.core.models.counters import StepCounter
from sslstudio.core.models.heads import simclr_head
from sslstudio.core.transforms.multicrop import by_resolution, multicrop_specs
from sslstudio.core.transforms.views import ViewSpec


@dataclass(frozen=True)
class SwAVConfig:
    n_prototypes: int = option(
        128, "number of prototypes (clusters); paper: 3000 for ImageNet", 2, 65536
    )
    temperature: float = option(0.1, "softmax temperature τ over prototype scores", 0.01, 1.0)
    epsilon: float = option(
        0.05, "Sinkhorn entropy weight ε; lower = harder assignments", 0.01, 1.0
    )
    sinkhorn_iters: int = option(3, "Sinkhorn-Knopp iterations", 1, 100)
    proj_hidden: int = option(512, "hidden width of the projection head", 16, 8192)
    proj_out: int = option(128, "embedding width the prototypes live in", 8, 4096)
    n_local: int = option(2, "small local crops per image besides the 2 global ones", 0, 16)
    local_size_ratio: float = option(0.45, "local crop side as a share of the image size", 0.1, 1.0)
    local_scale_max: float = option(
        0.14, "largest local crop area as a share of the image", 0.05, 1.0
    )
    freeze_prototypes_steps: int = option(
        -1, "steps before the prototypes start learning (-1 = one epoch)", -1, 10**9
    )
    queue_length: int = option(
        0, "earlier embeddings added to each Sinkhorn batch (0 = off)", 0, 65536
    )


@register("swav")
class SwAV(Method):
    """SwAV [0].

    - [0] Caron, Misra, Mairal, Goyal, Bojanowski, Joulin, "Unsupervised Learning of Visual
      Features by Contrasting Cluster Assignments", NeurIPS 2020, https://arxiv.org/abs/2006.09882
    """

    Config = SwAVConfig
    display_name = "SwAV"
    distributed = True
    paper = "Caron et al. 2020, https://arxiv.org/abs/2006.09882"
    paper_recipe = (
        "LARS, lr 0.3 per 256 images at batch 4096, weight decay 1e-6, 3000 prototypes, ε 0.05, τ "
        "0.1, 2×224 + 6×96 px crops, prototypes frozen for the first epoch, 800 epochs"
    )
    summary = (
        "SwAV sorts the images of each batch into a fixed number of groups it learns as it goes, "
        "with every group getting a fair share, and then asks the network to predict the group "
        "of one view of an image from another view. Besides two full-size views it also shows "
        "small close-up crops, which teaches the features to connect details with the whole "
        "picture. It needs no large batches of negatives."
    )

    def __init__(self, backbone: Backbone, config: SwAVConfig) -> None:
        super().__init__(backbone, config)
        self.head = simclr_head(backbone.feature_dim, config.proj_hidden, config.proj_out, 2)
        self.prototypes = nn.Linear(config.proj_out, config.n_prototypes, bias=False)
        self._normalise_prototypes()
        self.criterion = SwAVLoss(config.temperature, config.epsilon, config.sinkhorn_iters)
        self.steps_done = StepCounter()
        self.register_buffer("queue", torch.zeros(config.queue_length, config.proj_out))
        self._num_images = 0

    def view_specs(self, cfg: RunConfig) -> list[ViewSpec]:
        c = self.config
        return multicrop_specs(
            cfg, c.n_local, size_ratio=c.local_size_ratio, local_scale_max=c.local_scale_max
        )

    def on_train_start(self, num_images: int, total_steps: int) -> None:
        self._num_images = num_images

    def prototypes_frozen(self, batch_size: int) -> bool:
        """SwAV keeps the prototypes fixed during the first epoch: "it helps the very
        beginning of the optimization" (sec. 4 / their code's ``freeze_prototypes_niters``)."""
        n = self.config.freeze_prototypes_steps
        if n < 0:
            n = self._num_images // max(1, batch_size)  # one epoch, as the trainer counts them
        return int(self.steps_done) < n

    def training_step(self, batch: Batch) -> tuple[Tensor, dict[str, float]]:
        b = batch.views[0].shape[0] * self.ranks.size  # the global batch
        z = by_resolution(lambda x: F.normalize(self.head(self.backbone(x)), dim=1), batch.views)
        frozen = self.prototypes_frozen(b)
        w = self.prototypes.weight.detach() if frozen else self.prototypes.weight  # (K, D)
        scores = [zi @ w.T for zi in z]  # per view (B, K): cosine similarity to each prototype
        queue = None
        q_len = self.config.queue_length
        if q_len and int(self.steps_done) * 2 * b >= q_len:  # full: 2B embeddings join per step
            queue = self.queue @ w.detach().T  # (L, K)
        # Sinkhorn spreads the global batch over the prototypes: every rank's scores join it
        loss = self.criterion(scores, n_global=2, queue=queue, gather=self.ranks.gather_with_grad)
        if q_len:  # every rank queues the global batch's embeddings, view 0's then view 1's
            with torch.no_grad():
                new = torch.cat([self.ranks.gather(zi) for zi in z[:2]])  # (2B, D)
                self.queue.copy_(torch.cat([new, self.queue])[:q_len])
        return loss, {"prototypes_frozen": float(frozen)}

    def on_step_end(self, step: int, total_steps: int) -> None:
        self.steps_done.set(step + 1)
        self._normalise_prototypes()

    @torch.no_grad()
    def _normalise_prototypes(self) -> None:
        # prototypes live on the unit sphere, like the embeddings (Algorithm 1: "normalize
        # prototypes")
        self.prototypes.weight.copy_(F.normalize(self.prototypes.weight, dim=1))
