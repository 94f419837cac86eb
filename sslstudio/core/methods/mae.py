"""MAE: a ViT encodes a quarter of the patches; a small decoder paints in the rest."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn

from sslstudio.config import RunConfig, option
from sslstudio.core.losses.mae import MAELoss, patchify, random_masking
from sslstudio.core.methods.base import Batch, Method, register
from sslstudio.core.models.backbones import Backbone
from sslstudio.core.models.counters import StepCounter
from sslstudio.core.transforms.views import ViewSpec


@dataclass(frozen=True)
class MAEConfig:
    mask_ratio: float = option(0.75, "share of patches hidden from the encoder", 0.05, 0.95)
    decoder_dim: int = option(128, "decoder width; paper: 512", 16, 2048)
    decoder_depth: int = option(2, "decoder transformer blocks; paper: 8", 1, 16)
    decoder_heads: int = option(4, "decoder attention heads (must divide decoder_dim)", 1, 32)
    norm_pix_loss: bool = option(True, "predict each patch normalised by its own mean and std")


@register("mae")
class MAE(Method):
    """Masked autoencoder [0].

    - [0] He, Chen, Xie, Li, Dollár, Girshick, "Masked Autoencoders Are Scalable Vision
      Learners", CVPR 2022, https://arxiv.org/abs/2111.06377
    """

    Config = MAEConfig
    display_name = "MAE"
    distributed = True
    paper = "He et al. 2021, https://arxiv.org/abs/2111.06377"
    paper_recipe = (
        "AdamW (β 0.9, 0.95), lr 1.5e-4 per 256 images at batch 4096, weight decay 0.05, 75 % of "
        "patches hidden, 800-1600 epochs"
    )
    summary = (
        "MAE hides three quarters of each image, in small square patches, and trains the network "
        "to paint the hidden parts back from the visible ones. It needs only mild augmentation "
        "(crops and flips), because filling in missing tissue already forces the network to "
        "learn what structures look like. It works with vision transformers (vit_tiny, vit_small) "
        "only; its features are usually fine-tuned rather than used as they are. It needs long "
        "training: after minutes on a CPU its features were no better than an untrained network's "
        "on small photos and a little better on tissue tiles, so choose it for long GPU runs."
    )
    # the task is the augmentation: colour changes would only make the pixels harder to predict
    constraints = {"jitter_p": 0.0, "grey_p": 0.0, "blur_p": 0.0, "hed_p": 0.0}
    requires_backbone_family = "timm-vit"
    # AdamW as everywhere; ViTs want more decay. lr 7.5e-4 per 256: at equal CPU time (H&E, 64 px)
    # it beat 3.75e-4, 1.5e-3 and 3e-3 on the linear probe and kept more feature dimensions
    optim_defaults = {"lr": 7.5e-4, "weight_decay": 0.05}

    def __init__(self, backbone: Backbone, config: MAEConfig) -> None:
        super().__init__(backbone, config)
        if backbone.info.family != self.requires_backbone_family:
            raise ValueError(
                f"MAE hides patches of a vision transformer and cannot use {backbone.info.name}: "
                "choose the backbone vit_tiny or vit_small"
            )
        if config.decoder_dim % config.decoder_heads:
            raise ValueError(
                f"decoder_heads ({config.decoder_heads}) must divide decoder_dim "
                f"({config.decoder_dim})"
            )
        from timm.models.vision_transformer import Block  # timm only loads when MAE is built

        vit = backbone.body
        dd, p = config.decoder_dim, vit.patch_size
        self.grid = tuple(vit.patch_embed.grid_size)
        self.decoder_embed = nn.Linear(backbone.feature_dim, dd)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dd))
        self.decoder_pos = nn.Parameter(torch.zeros(1, self.grid[0] * self.grid[1], dd))
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        nn.init.trunc_normal_(self.decoder_pos, std=0.02)
        self.decoder = nn.Sequential(
            *[Block(dd, config.decoder_heads, qkv_bias=True) for _ in range(config.decoder_depth)],
            nn.LayerNorm(dd),
            nn.Linear(dd, p * p * 3),  # pixels of one patch
        )
        self.criterion = MAELoss(norm_pix=config.norm_pix_loss)
        self.steps_done = StepCounter()
        self.register_buffer("seed", torch.randint(0, 2**31 - 1, ()))  # from the run's seed

    def view_specs(self, cfg: RunConfig) -> list[ViewSpec]:
        a = cfg.augment  # the paper's RandomResizedCrop scale is (0.2, 1)
        a = replace(a, crop_scale_min=min(max(a.crop_scale_min, 0.2), a.crop_scale_max))
        return [ViewSpec(a, cfg.image_size, count=1)]

    def mask_noise(self, b: int, n: int, device: torch.device) -> Tensor:
        """``(B, N)`` noise from (seed, step): a resumed run draws the same masks."""
        g = torch.Generator().manual_seed(int(self.seed) * 1_000_003 + int(self.steps_done))
        return torch.rand(b, n, generator=g).to(device)

    def training_step(self, batch: Batch) -> tuple[Tensor, dict[str, float]]:
        # views are ImageNet-normalised; with norm_pix_loss each patch is re-normalised anyway
        x = batch.views[0]
        vit = self.backbone.body
        tokens, grid = vit.patch_tokens(x)  # (B, N, D) with positions
        if grid != self.grid:
            raise ValueError(f"MAE was built for a {self.grid} patch grid, got {grid}")
        b, n, d = tokens.shape
        # the global batch's noise, this rank's rows of it: the masks of one process's step
        noise = self.mask_noise(b * self.ranks.size, n, x.device)[self.ranks.rank * b :][:b]
        ids_keep, mask = random_masking(noise, self.config.mask_ratio)
        kept = torch.gather(tokens, 1, ids_keep[..., None].expand(-1, -1, d))  # (B, n_keep, D)
        latent = self.decoder_embed(vit.encode(kept))  # (B, 1 + n_keep, Dd)
        dd = latent.shape[-1]
        # mask tokens everywhere, then the encoded tokens scattered back to their own places
        full = self.mask_token.expand(b, n, dd).scatter(
            1, ids_keep[..., None].expand(-1, -1, dd), latent[:, 1:]
        )  # (B, N, Dd)
        y = self.decoder(torch.cat([latent[:, :1], full + self.decoder_pos], dim=1))
        pred = y[:, 1:]  # (B, N, p*p*3): drop the class token
        return self.criterion(pred, patchify(x, vit.patch_size), mask), {}

    def on_step_end(self, step: int, total_steps: int) -> None:
        self.steps_done.set(step + 1)

    def embed(self, images: Tensor) -> Tensor:
        """The average of the encoder's patch tokens, as MAE's fine-tuning pools them: the
        reconstruction loss trains the patch tokens, not the class token."""
        return self.backbone.body.feature_map(images).mean(dim=(2, 3))
