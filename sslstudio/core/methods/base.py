"""The method contract and registry. A method = backbone + heads + loss, in one ``nn.Module``.

The trainer calls only: ``view_specs(cfg)`` (which crops), ``training_step(views)`` (loss and
metrics), ``on_step_end(step, total_steps)`` (EMA, queues, centres; default no-op) and
``embed(images)`` (backbone features, for kNN, neighbours and export).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar

from torch import Tensor, nn

from sslstudio.config import OptimConfig, RunConfig
from sslstudio.core.models.backbones import Backbone, build_backbone, resolve_small_stem
from sslstudio.core.transforms.views import ViewSpec
from sslstudio.errors import ConfigError

METHODS: dict[str, type[Method]] = {}


def register(name: str):
    def deco(cls: type[Method]) -> type[Method]:
        if name in METHODS:
            raise ValueError(f"method {name!r} registered twice")
        cls.name = name
        METHODS[name] = cls
        return cls

    return deco


class Method(nn.Module):
    """Subclasses set ``Config`` (a frozen dataclass), ``summary`` (one plain-language paragraph)
    and, if they restrict augmentations, ``constraints`` (AugmentConfig fields forced to values)."""

    name: ClassVar[str]
    Config: ClassVar[type]
    summary: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    # how the paper trains it at scale (large batches, long schedules): shown beside the
    # studio's own defaults, which are tuned for short runs at small sizes
    paper_recipe: ClassVar[str] = ""
    constraints: ClassVar[dict[str, float]] = {}
    # methods that keep per-image state (DeepCluster's pseudo-labels) get the batch's dataset
    # indices as ``training_step(views, indices=...)``
    wants_indices: ClassVar[bool] = False
    # set by the trainer under --distributed: every rank's rows of a tensor (with gradients) and
    # where this rank's start; losses comparing an image with the batch use it for negatives
    gather: Callable[[Tensor], tuple[Tensor, int]] | None = None
    # a backbone family the method cannot work without (MAE masks ViT tokens: "timm-vit")
    requires_backbone_family: ClassVar[str | None] = None
    # OptimConfig fields this method trains better with than the defaults (which suit most
    # methods), tested in short runs on a CPU at 32-64 px, batch 128 (bench/methods.py)
    optim_defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, backbone: Backbone, config: Any) -> None:
        super().__init__()
        self.backbone = backbone
        self.config = config

    def view_specs(self, cfg: RunConfig) -> list[ViewSpec]:
        """Two views of the run's augmentation at the training size (override for multi-crop)."""
        return [ViewSpec(cfg.augment, cfg.image_size, count=2)]

    def training_step(self, views: list[Tensor]) -> tuple[Tensor, dict[str, float]]:
        raise NotImplementedError

    def on_train_start(self, num_images: int, total_steps: int) -> None:
        """Called once before the first step (and before a checkpoint is loaded into the method),
        so buffers sized by the dataset exist when their saved values arrive. Default: nothing."""

    def on_data_changed(self, num_images: int, step: int) -> None:
        """After a checkpoint was loaded, when the folder changed since it was saved: per-image
        state (sized and ordered by the old folder) must be rebuilt. Default: nothing."""

    def on_step_end(self, step: int, total_steps: int) -> None:
        """EMA updates, queues, centres. Default: nothing."""

    def embed(self, images: Tensor) -> Tensor:
        """Backbone features ``(B, D)`` for kNN, neighbours and export."""
        return self.backbone(images)


def check_backbone(method: str, backbone: str, progressive_from: int = 0) -> None:
    """Refuse, before any scan or run folder, a backbone the method cannot use (or none known),
    or progressive resizing on a backbone fixed to one input size."""
    from sslstudio.core.models.backbones import backbone_info

    try:
        info = backbone_info(backbone)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    need = METHODS[method].requires_backbone_family if method in METHODS else None
    if need and info.family != need:
        fits = sorted(n for n in _backbone_names() if backbone_info(n).family == need)
        raise ConfigError(
            f"{method} cannot use the backbone {backbone}: choose one of {', '.join(fits)}"
        )
    if progressive_from and info.family == "timm-vit":
        raise ConfigError(
            f"progressive resizing needs a convolutional backbone: {backbone}'s position embeddings "
            "are fixed to the image size; set progressive_from to 0 or choose a ResNet"
        )


def _backbone_names() -> list[str]:
    from sslstudio.core.models.backbones import BACKBONES

    return list(BACKBONES)


def method_config(name: str, options: dict[str, Any]) -> Any:
    """The method's typed config from plain options; unknown or bad options raise ``ConfigError``."""
    if name not in METHODS:
        raise ConfigError(f"unknown method {name!r}; choose one of {', '.join(sorted(METHODS))}")
    cls = METHODS[name].Config
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(
            f"unknown option(s) for {name}: {', '.join(unknown)} (known: {', '.join(sorted(known))})"
        )
    try:
        conf = cls(**options)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"bad options for {name}: {exc}") from exc
    from sslstudio.config import field_problems

    problems = field_problems(conf, f"{name}.")
    if problems:
        raise ConfigError("invalid method options:\n  " + "\n  ".join(problems))
    return conf


def build_method(cfg: RunConfig) -> Method:
    conf = method_config(cfg.method, cfg.method_options)
    backbone = build_backbone(
        cfg.backbone,
        small_stem=resolve_small_stem(cfg.small_stem, cfg.image_size),
        weights=cfg.weights,
        image_size=cfg.image_size,
    )
    try:
        method = METHODS[cfg.method](backbone, conf)
    except ValueError as exc:  # e.g. MAE on a ResNet: the user must change the config
        raise ConfigError(str(exc)) from exc
    # what embedding must do to an image before this network sees it (as training did)
    method.input_norm = cfg.input_norm
    return method


def method_optim(name: str, base: OptimConfig | None = None) -> OptimConfig:
    """``base`` (default: the generic defaults) with method ``name``'s own optimiser settings."""
    cls = METHODS.get(name)
    base = base if base is not None else OptimConfig()
    return dataclasses.replace(base, **cls.optim_defaults) if cls is not None else base
