"""The method contract and registry. A method = backbone + heads + loss, in one ``nn.Module``.

The trainer calls only: ``view_specs(cfg)`` (which crops), ``training_step(batch)`` (loss and
metrics), ``on_step_end(step, total_steps)`` (EMA, queues, centres; default no-op) and
``embed(images)`` (backbone features, for kNN, neighbours and export).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import torch
from torch import Tensor, nn

from sslstudio.config import OptimConfig, RunConfig, option, validate
from sslstudio.core.models.backbones import Backbone, build_backbone, resolve_small_stem
from sslstudio.core.transforms.views import ViewSpec
from sslstudio.errors import ConfigError

METHODS: dict[str, type[Method]] = {}


class Batch(NamedTuple):
    """What one training step gets: every method is called the same way, whatever it uses."""

    views: list[Tensor]  # one (B, C, H, W) tensor per view, in ``view_specs`` order
    # the images' positions in the dataset (B,), on the CPU: for per-image state (DeepCluster)
    indices: Tensor | None = None


class Collectives:
    """What a method asks of the other processes, so its code is the same on one process and on
    many: here the identity (one process holds the whole batch); ``train.ranks.Ranked`` speaks
    to the other ranks. Every rank passes tensors of the same shape, in the same order."""

    rank, size = 0, 1

    def gather_with_grad(self, x: Tensor) -> tuple[Tensor, int]:
        """Every rank's rows of ``x`` stacked in rank order, gradients flowing back to each
        rank's own rows, and where this rank's rows start."""
        return x, 0

    def gather(self, x: Tensor) -> Tensor:
        """Every rank's rows of ``x`` stacked in rank order, without gradients."""
        return x.detach()

    def all_reduce_mean(self, x: Tensor) -> Tensor:
        """The mean of ``x`` over ranks, without gradients."""
        return x.detach()

    def gather_chunks(self, x: Tensor, chunks: int) -> Tensor:
        """``x`` stacks ``chunks`` equal parts (views of the same images): each part gathered
        on its own, so the result stacks the global batch part by part, as one process's
        ``torch.cat`` of the views would."""
        return torch.cat([self.gather(part) for part in x.chunk(chunks)])


ONE_PROCESS = Collectives()


def register(name: str):
    def deco(cls: type[Method]) -> type[Method]:
        if name in METHODS:
            raise ValueError(f"method {name!r} registered twice")
        cls.name = name
        METHODS[name] = cls
        return cls

    return deco


# Options several methods share. A method's config inherits the ones it has, and re-declares a
# field to give its own default, range or help (the paper's value); the field keeps its place.
# Dataclasses put the *last* base's fields first: ``Config(ProjectionOptions,
# TemperatureOptions)`` reads temperature, proj_hidden, proj_out, then its own fields.


@dataclass(frozen=True)
class TemperatureOptions:
    temperature: float = option(0.2, "InfoNCE temperature τ (paper: 0.2)", 0.01, 2.0)


@dataclass(frozen=True)
class ProjectionOptions:
    proj_hidden: int = option(512, "hidden width of the projection head", 16, 8192)
    proj_out: int = option(128, "output width of the projection head", 8, 4096)


@dataclass(frozen=True)
class MomentumOptions:
    """A target network following the trained one by EMA, its momentum rising along a cosine."""

    momentum_base: float = option(0.99, "target momentum at the start", 0.0, 1.0)
    momentum_final: float = option(1.0, "target momentum at the end", 0.0, 1.0)


class Method(nn.Module):
    """A method is one file: its class holds everything the trainer, the GUI and the command
    line ask about it. Subclasses set ``Config`` (a frozen dataclass of its options),
    ``display_name`` (as the paper writes it), ``summary`` (one plain-language paragraph), and
    ``distributed`` when its loss is exact across processes; if they restrict augmentations,
    ``constraints`` (AugmentConfig fields forced to values)."""

    name: ClassVar[str]  # the registered name, set by ``register``
    Config: ClassVar[type]
    display_name: ClassVar[str] = ""  # empty: shown as the registered name
    summary: ClassVar[str] = ""
    # trains under --distributed: every batch-wide quantity (negatives, queues, statistics,
    # Sinkhorn, centres, clusters) is computed over the global batch through ``ranks``
    distributed: ClassVar[bool] = False
    paper: ClassVar[str] = ""
    # how the paper trains it at scale (large batches, long schedules): shown beside the
    # studio's own defaults, which are tuned for short runs at small sizes
    paper_recipe: ClassVar[str] = ""
    constraints: ClassVar[dict[str, float]] = {}
    # the other processes, for batch-wide state (``Collectives``): the identity on one process;
    # under --distributed the trainer sets its ``Ranked`` here
    ranks: Collectives = ONE_PROCESS
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

    def training_step(self, batch: Batch) -> tuple[Tensor, dict[str, float]]:
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
            f"progressive resizing needs a convolutional backbone: {backbone}'s position "
            "embeddings "
            "are fixed to the image size; set progressive_from to 0 or choose a ResNet"
        )


def _backbone_names() -> list[str]:
    from sslstudio.core.models.backbones import BACKBONES

    return list(BACKBONES)


def method_config(name: str, options: dict[str, Any]) -> Any:
    """The method's typed config from plain options; unknown or bad options raise
    ``ConfigError``."""
    if name not in METHODS:
        raise ConfigError(f"unknown method {name!r}; choose one of {', '.join(sorted(METHODS))}")
    cls = METHODS[name].Config
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(
            f"unknown option(s) for {name}: {', '.join(unknown)} (known: "
            f"{', '.join(sorted(known))})"
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


def check_run_config(cfg: RunConfig) -> None:
    """The one check a run's config passes before any work starts: the CLI, the window and the
    trainer all call it, so they refuse the same configs with the same words. ``ConfigError``
    (one message a user can act on) for a bad field or cross-field rule, an unknown method or
    option, a backbone the method cannot use, or progressive resizing on a backbone fixed to one
    input size."""
    validate(cfg)
    method_config(cfg.method, cfg.method_options)
    check_backbone(cfg.method, cfg.backbone, cfg.progressive_from)
