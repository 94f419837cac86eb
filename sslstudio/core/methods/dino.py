"""DINO: a student matches a momentum teacher's centred, sharpened outputs over multi-crop views."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from sslstudio.config import RunConfig, option
from sslstudio.core.losses.dino import DINOLoss
from sslstudio.core.methods.base import Batch, Method, register
from sslstudio.core.models.backbones import Backbone
from sslstudio.core.models.counters import StepCounter
from sslstudio.core.models.ema import copy_frozen, ema_update, momentum_at
from sslstudio.core.models.heads import DINOHead
from sslstudio.core.transforms.multicrop import by_resolution, multicrop_specs
from sslstudio.core.transforms.views import ViewSpec


@dataclass(frozen=True)
class DINOConfig:
    out_dim: int = option(
        1024, "output width K of the head; paper: 65536 (costly on a CPU)", 16, 65536
    )
    head_hidden: int = option(512, "hidden width of the head's MLP; paper: 2048", 16, 8192)
    bottleneck: int = option(128, "bottleneck width before the last layer; paper: 256", 8, 4096)
    head_batchnorm: bool = option(
        True, "BatchNorm in the head's MLP (DINO's use_bn_in_head option)"
    )
    student_temp: float = option(0.1, "student temperature τ_s", 0.01, 1.0)
    teacher_temp: float = option(
        0.07, "teacher temperature τ_t after warm-up (sharpening)", 0.01, 1.0
    )
    warmup_teacher_temp: float = option(0.04, "teacher temperature at the start", 0.01, 1.0)
    teacher_temp_warmup: float = option(0.3, "share of training over which τ_t rises", 0.0, 1.0)
    center_momentum: float = option(0.9, "momentum of the teacher-output centre", 0.0, 0.999)
    momentum_base: float = option(
        0.99,
        "teacher EMA momentum at the start (cosine to final); paper: 0.996 for 100+ epochs, "
        "0.99 lets the teacher keep up in short runs (bench/methods.py)",
        0.0,
        1.0,
    )
    momentum_final: float = option(1.0, "teacher EMA momentum at the end", 0.0, 1.0)
    n_local: int = option(
        2, "small local crops per image besides the 2 global ones; paper: 10", 0, 16
    )
    local_size_ratio: float = option(0.45, "local crop side as a share of the image size", 0.1, 1.0)
    local_scale_max: float = option(
        0.4, "largest local crop area (global crops start here)", 0.05, 1.0
    )


@register("dino")
class DINO(Method):
    """DINO [0].

    - [0] Caron, Touvron, Misra, Jégou, Mairal, Bojanowski, Joulin, "Emerging Properties in
      Self-Supervised Vision Transformers", ICCV 2021, https://arxiv.org/abs/2104.14294
    """

    Config = DINOConfig
    display_name = "DINO"
    distributed = True
    paper = "Caron et al. 2021, https://arxiv.org/abs/2104.14294"
    paper_recipe = (
        "ViT-S: AdamW, lr 5e-4 per 256 images at batch 1024, weight decay 0.04 rising to 0.4, "
        "teacher momentum 0.996 rising to 1, teacher τ 0.04→0.07, 65,536 outputs, 2×224 + 10×96 px "
        "crops, 100-800 epochs"
    )
    summary = (
        "DINO trains a student network to give the same answer as a teacher network for "
        "different views of an image, including small close-up crops that the teacher never "
        "sees. The teacher is a slowly moving average of the student, so there are no negative "
        "pairs and no labels. It works with both convolutional networks and vision transformers, "
        "and its transformer features are known to outline tissue structures well. In a few "
        "minutes on a CPU it helped on tissue tiles but hardly on small photos: it rewards long "
        "runs."
    )

    def __init__(self, backbone: Backbone, config: DINOConfig) -> None:
        super().__init__(backbone, config)
        if config.momentum_base > config.momentum_final:
            raise ValueError(
                f"momentum_base ({config.momentum_base}) must not exceed momentum_final "
                f"({config.momentum_final})"
            )
        # BatchNorm in the head is on by default: a small random CNN gives nearly the same output
        # for every image, so the centred teacher targets were uniform and the loss sat at log K
        # within 20 steps without it (tiny_cnn, 16 px); with it the targets stay informative
        self.head = DINOHead(
            backbone.feature_dim,
            config.out_dim,
            config.head_hidden,
            config.bottleneck,
            batchnorm=config.head_batchnorm,
        )
        self.teacher_backbone = copy_frozen(backbone)
        self.teacher_head = copy_frozen(self.head)
        self.criterion = DINOLoss(config.out_dim, config.student_temp, config.center_momentum)
        self.steps_done = StepCounter()
        self._total_steps = 1

    def view_specs(self, cfg: RunConfig) -> list[ViewSpec]:
        c = self.config
        return multicrop_specs(
            cfg,
            c.n_local,
            size_ratio=c.local_size_ratio,
            local_scale_max=c.local_scale_max,
            global_scale_min=c.local_scale_max if c.n_local else None,
        )

    def on_train_start(self, num_images: int, total_steps: int) -> None:
        self._total_steps = max(1, total_steps)

    def teacher_temperature(self) -> float:
        """Linear warm-up of τ_t: "a linear warm-up from 0.04 to 0.07 during the first 30
        epochs"."""
        c = self.config
        warm = c.teacher_temp_warmup * self._total_steps
        share = min(1.0, int(self.steps_done) / warm) if warm > 0 else 1.0
        return c.warmup_teacher_temp + (c.teacher_temp - c.warmup_teacher_temp) * share

    def training_step(self, batch: Batch) -> tuple[Tensor, dict[str, float]]:
        student = by_resolution(lambda x: self.head(self.backbone(x)), batch.views)
        with torch.no_grad():  # the teacher sees only the two global views
            teacher = by_resolution(
                lambda x: self.teacher_head(self.teacher_backbone(x)), batch.views[:2]
            )
        temp = self.teacher_temperature()
        loss = self.criterion(student, teacher, temp, average=self.ranks.all_reduce_mean)
        return loss, {"teacher_temp": temp}

    def on_step_end(self, step: int, total_steps: int) -> None:
        c = self.config
        m = momentum_at(c.momentum_base, c.momentum_final, step, total_steps)
        ema_update(self.teacher_backbone, self.backbone, m)
        ema_update(self.teacher_head, self.head, m)
        self.steps_done.set(step + 1)
