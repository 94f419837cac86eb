"""Vision Transformers from timm, sized for the training resolution, never downloaded.

The patch size follows the image size (:func:`vit_patch_size`) so small images still give the
attention a grid of tokens to work with. ``dynamic_img_size=True`` lets the same network take
multi-crop local views of another size: the positional embedding is resampled to each grid.
:class:`ViT` adds the two pieces MAE needs — patch tokens with their positions, and the encoder
run on any subset of them — and the spatial token map colourisation's decoder reads.

- [0] Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words", https://arxiv.org/abs/2010.11929
"""

from __future__ import annotations

import torch
from timm.layers import resample_abs_pos_embed
from timm.models.vision_transformer import VisionTransformer
from torch import Tensor

# name -> (embed_dim, depth, heads): ViT-Tiny / ViT-Small of DeiT (Touvron et al. 2021)
VIT_SIZES = {"vit_tiny": (192, 12, 3), "vit_small": (384, 12, 6)}


def vit_patch_size(image_size: int) -> int:
    """4 px for images up to 32 px, 8 px up to 96 px, 16 px above.

    This keeps between 4x4 and 12x12 tokens at small sizes and ViT's own 14x14 at 224 px: too few
    tokens leave attention nothing to relate, too many make its quadratic cost explode on a CPU.
    """
    if image_size <= 32:
        return 4
    if image_size <= 96:
        return 8
    return 16


class ViT(VisionTransformer):
    """timm's VisionTransformer (class-token output, no classifier) with token-level access."""

    def __init__(self, variant: str, image_size: int) -> None:
        if variant not in VIT_SIZES:
            raise ValueError(f"unknown ViT {variant!r}; choose one of {', '.join(VIT_SIZES)}")
        dim, depth, heads = VIT_SIZES[variant]
        super().__init__(
            img_size=image_size,
            patch_size=vit_patch_size(image_size),
            embed_dim=dim,
            depth=depth,
            num_heads=heads,
            num_classes=0,  # forward returns the normalised class token
            global_pool="token",
            dynamic_img_size=True,
        )

    @property
    def patch_size(self) -> int:
        return int(self.patch_embed.patch_size[0])

    def pos_embed_for(self, grid: tuple[int, int]) -> tuple[Tensor, Tensor]:
        """Positional embeddings ``(1, 1, D)`` of the class token and ``(1, h*w, D)`` of the
        patches."""
        pos = self.pos_embed
        if tuple(grid) != tuple(self.patch_embed.grid_size):
            pos = resample_abs_pos_embed(
                pos,
                new_size=list(grid),
                old_size=list(self.patch_embed.grid_size),
                num_prefix_tokens=1,
            )
        return pos[:, :1], pos[:, 1:]

    def patch_tokens(self, x: Tensor) -> tuple[Tensor, tuple[int, int]]:
        """Args: x ``(B, 3, H, W)``. Returns patch tokens plus positions ``(B, h*w, D)`` and ``(h,
        w)``."""
        t = self.patch_embed(x)  # (B, h, w, D): dynamic_img_size makes the patch embedding NHWC
        b, h, w, d = t.shape
        _, patch_pos = self.pos_embed_for((h, w))
        return t.reshape(b, h * w, d) + patch_pos, (h, w)  # (B, h*w, D), row-major grid

    def encode(self, tokens: Tensor) -> Tensor:
        """Run the encoder on any set of position-embedded patch tokens ``(B, n, D)``.

        Returns ``(B, 1 + n, D)``: the class token first, after the final norm.
        """
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(tokens.shape[0], -1, -1)
        x = torch.cat([cls, tokens], dim=1)  # (B, 1 + n, D)
        return self.norm(self.blocks(self.norm_pre(x)))

    def feature_map(self, x: Tensor) -> Tensor:
        """Patch tokens after the encoder as a map ``(B, D, h, w)`` (for dense decoders)."""
        tokens, (h, w) = self.patch_tokens(x)
        out = self.encode(tokens)[:, 1:]  # (B, h*w, D): drop the class token
        return out.transpose(1, 2).reshape(out.shape[0], -1, h, w)
