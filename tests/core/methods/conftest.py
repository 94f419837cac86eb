"""Build a method the way the trainer does, at test sizes (tiny_cnn, 16 px)."""

from __future__ import annotations

import pytest
import torch

from sslstudio.config import RunConfig
from sslstudio.core.methods import build_method
from sslstudio.core.transforms.presets import preset
from sslstudio.core.transforms.views import ViewPipeline, step_generator


def run_config(
    method: str, backbone: str = "tiny_cnn", image_size: int = 16, **options
) -> RunConfig:
    return RunConfig(
        data_root=".",
        method=method,
        backbone=backbone,
        image_size=image_size,
        batch_size=8,
        augment=preset("natural", image_size),
        method_options=options,
    )


@pytest.fixture
def make_method():
    def make(method: str, backbone: str = "tiny_cnn", image_size: int = 16, **options):
        torch.manual_seed(0)
        cfg = run_config(method, backbone, image_size, **options)
        return build_method(cfg), cfg

    return make


def views_for(method, cfg: RunConfig, step: int = 0, n: int = 8) -> list[torch.Tensor]:
    """The views the trainer would give ``method`` at ``step`` for ``n`` random images."""
    images = torch.randint(
        0, 256, (n, 3, 24, 24), generator=torch.Generator().manual_seed(step), dtype=torch.uint8
    )
    pipeline = ViewPipeline(method.view_specs(cfg), constraints=method.constraints)
    return pipeline(images, step_generator(0, step))
