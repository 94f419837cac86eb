"""MoCo v2: queries from the network, keys from its slow-moving twin, negatives from a queue."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from sslstudio.config import option
from sslstudio.core.losses.infonce import InfoNCELoss
from sslstudio.core.methods.base import Batch, Method, register
from sslstudio.core.models.backbones import Backbone
from sslstudio.core.models.ema import MomentumSchedule, copy_frozen, ema_update
from sslstudio.core.models.heads import ProjectionHead
from sslstudio.core.models.queue import FeatureQueue


@dataclass(frozen=True)
class MoCoConfig:
    temperature: float = option(0.2, "InfoNCE temperature τ (paper: 0.2)", 0.01, 2.0)
    queue_size: int = option(
        4096,
        "past keys kept as negatives (paper: 65536); capped at half the folder's images, so an "
        "image rarely meets its own older key as a negative",
        16,
        262144,
    )
    momentum_base: float = option(
        0.99,
        "key-encoder momentum at the start; it rises along a cosine to the final value (paper: "
        "0.999 throughout, for long ImageNet runs; 0.99 suits short runs)",
        0.0,
        1.0,
    )
    momentum_final: float = option(1.0, "key-encoder momentum at the end", 0.0, 1.0)
    proj_hidden: int = option(512, "hidden width of the MLP head (paper: 2048)", 16, 8192)
    proj_out: int = option(128, "output width of the head (paper: 128)", 8, 4096)
    symmetric: bool = option(
        False, "also contrast the second view's query with the first view's key"
    )


@register("moco")
class MoCo(Method):
    """MoCo v2 [0, 1].

    - [0] He, Fan, Wu, Xie, Girshick, "Momentum Contrast for Unsupervised Visual Representation
      Learning", CVPR 2020, https://arxiv.org/abs/1911.05722
    - [1] Chen, Fan, Girshick, He, "Improved Baselines with Momentum Contrastive Learning", 2020,
      https://arxiv.org/abs/2003.04297 ("an MLP projection head [...] 2048-d hidden layer")
    """

    Config = MoCoConfig
    display_name = "MoCo v2"
    distributed = True
    paper = (
        "He et al. 2019, https://arxiv.org/abs/1911.05722; Chen et al. 2020, "
        "https://arxiv.org/abs/2003.04297"
    )
    paper_recipe = (
        "SGD, lr 0.03 per 256 images, weight decay 1e-4, batch 256, key encoder momentum 0.999, "
        "queue of 65,536, τ 0.2, 200-800 epochs"
    )
    summary = (
        "MoCo shows the network two altered copies of each image and teaches it to match them, "
        "while telling each image apart from thousands of images it has seen recently, which it "
        "keeps in a running list. A slowly changing copy of the network describes the images on "
        "that list, so the comparisons stay consistent. Because the list, not the batch, supplies "
        "the comparisons, it learns well with small batches on modest hardware."
    )

    def __init__(self, backbone: Backbone, config: MoCoConfig) -> None:
        super().__init__(backbone, config)
        d, h, o = backbone.feature_dim, config.proj_hidden, config.proj_out
        # MoCo v2's head has no BN: "a 2-layer MLP head (hidden layer 2048-d, with ReLU)"
        self.head = ProjectionHead([(d, h, None, nn.ReLU(inplace=True)), (h, o, None, None)])
        self.key_backbone = copy_frozen(backbone)
        self.key_head = copy_frozen(self.head)
        self.queue = FeatureQueue(config.queue_size, o)
        self.momentum = MomentumSchedule(config.momentum_base, config.momentum_final)
        self.criterion = InfoNCELoss(config.temperature)
        self._keys: Tensor | None = None  # this step's keys, queued once the step is done

    def on_train_start(self, num_images: int, total_steps: int) -> None:
        self.queue.cap(num_images // 2)
        self.momentum.start(total_steps)

    def training_step(self, batch: Batch) -> tuple[Tensor, dict[str, float]]:
        x0, x1 = batch.views
        sym = self.config.symmetric
        q = self.head(self.backbone(torch.cat([x0, x1]) if sym else x0))
        with torch.no_grad():
            k = self.key_head(self.key_backbone(torch.cat([x1, x0]) if sym else x1))
        # row i of q meets row i of k; symmetric mode stacks [q0; q1] against [k1; k0], so the
        # mean over its 2N rows is the mean of both directions
        loss = self.criterion(q, k, self.queue.contents())
        # every rank queues the global batch's keys, view by view as one process stacks them
        self._keys = self.ranks.gather_chunks(k, 2 if sym else 1)
        return loss, {"momentum": self.momentum.current()}

    def on_step_end(self, step: int, total_steps: int) -> None:
        m = self.momentum.advance(step, total_steps)
        ema_update(self.key_backbone, self.backbone, m)
        ema_update(self.key_head, self.head, m)
        if self._keys is not None:
            self.queue.enqueue(self._keys)
            self._keys = None
