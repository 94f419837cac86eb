"""Run configuration: frozen dataclasses, defaults in one place, JSON in and out, validation.

Every field carries ``metadata={"help", "min", "max"}`` (and ``"choices"`` where it is a
choice): the GUI builds its forms from them and :func:`validate` checks them, so a bad
value is refused before training starts with a message naming the field. Torch-free.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sslstudio.errors import ConfigError

CONFIG_VERSION = 1


def option(default: Any, help: str, min: Any = None, max: Any = None, **meta: Any) -> Any:
    """A config field with the metadata the GUI's forms and :func:`field_problems` read:
    ``option(0.2, "temperature", 0.01, 2.0)``; ``meta`` adds e.g. ``choices``."""
    bounds = {k: v for k, v in (("min", min), ("max", max)) if v is not None}
    return field(default=default, metadata={"help": help, **bounds, **meta})


_f = option  # the short name the run config's many fields use


# The time a run gets when neither its epochs nor a time is chosen (the window and `sslstudio
# train`). Measured on a 2-thread CPU (bench/results/budget-*.json, 2026-11-26): 10 minutes of
# budget mode lifts kNN top-1 from 0.38 (random init) to 0.80 on crc-he-subset and from 0.31 to
# 0.42 on cifar10-subset; the H&E curve is flat after ~6 minutes (0.79 at step 889 of 1571).
DEFAULT_TIME_S = 600.0


@dataclass(frozen=True)
class AugmentConfig:
    """One view's random augmentation; parameters are drawn per image, never per batch."""

    crop_scale_min: float = _f(
        0.08, "smallest crop area as a share of the image", min=0.01, max=1.0
    )
    crop_scale_max: float = _f(1.0, "largest crop area as a share of the image", min=0.01, max=1.0)
    crop_ratio_min: float = _f(3 / 4, "narrowest crop aspect ratio (w/h)", min=0.1, max=1.0)
    crop_ratio_max: float = _f(4 / 3, "widest crop aspect ratio (w/h)", min=1.0, max=10.0)
    hflip_p: float = _f(0.5, "probability of a horizontal flip", min=0.0, max=1.0)
    vflip_p: float = _f(0.0, "probability of a vertical flip", min=0.0, max=1.0)
    rot90_p: float = _f(0.0, "probability of a random 90/180/270 degree rotation", min=0.0, max=1.0)
    jitter_p: float = _f(0.8, "probability of colour jitter", min=0.0, max=1.0)
    brightness: float = _f(0.4, "brightness jitter strength", min=0.0, max=2.0)
    contrast: float = _f(0.4, "contrast jitter strength", min=0.0, max=2.0)
    saturation: float = _f(0.4, "saturation jitter strength", min=0.0, max=2.0)
    hue: float = _f(0.1, "hue jitter (fraction of the colour wheel)", min=0.0, max=0.5)
    grey_p: float = _f(0.2, "probability of converting to greyscale", min=0.0, max=1.0)
    blur_p: float = _f(0.5, "probability of Gaussian blur", min=0.0, max=1.0)
    blur_sigma_min: float = _f(0.1, "smallest blur sigma, in pixels at 224 px", min=0.0, max=10.0)
    blur_sigma_max: float = _f(2.0, "largest blur sigma, in pixels at 224 px", min=0.0, max=10.0)
    hed_p: float = _f(0.0, "probability of H&E stain (HED) jitter", min=0.0, max=1.0)
    hed_sigma: float = _f(0.05, "HED jitter strength (scale and shift per stain)", min=0.0, max=0.5)


@dataclass(frozen=True)
class OptimConfig:
    # AdamW 2e-3: beat SGD by 1-11 kNN points in equal-time CPU runs, and trains every joint-
    # embedding method of the zoo in short runs (bench/methods.py, BENCHMARKS.md)
    optimizer: str = _f("adamw", "optimizer", choices=("sgd", "lars", "adamw"))
    lr: float = _f(
        2e-3,
        "learning rate for a batch of 256 (scaled linearly with the batch)",
        min=1e-6,
        max=20.0,
    )
    weight_decay: float = _f(1e-4, "weight decay", min=0.0, max=1.0)
    momentum: float = _f(0.9, "SGD/LARS momentum", min=0.0, max=0.999)
    warmup_epochs: float = _f(0.5, "linear warm-up length, in epochs", min=0.0, max=100.0)
    min_lr_ratio: float = _f(0.0, "final learning rate as a share of the peak", min=0.0, max=1.0)


@dataclass(frozen=True)
class RunConfig:
    """Everything a run needs; saved as ``config.json`` in the run folder."""

    data_root: str = _f("", "folder of images (searched recursively)")
    method: str = _f("simclr", "self-supervised method")
    backbone: str = _f("resnet18", "backbone network")
    small_stem: str = _f(
        "auto",
        "3x3 stem without max-pool ('auto': on for images <= 64 px)",
        choices=("auto", "on", "off"),
    )
    weights: str = _f(
        "",
        "local weights file to start from (safetensors or a torchvision state dict); empty = "
        "random init",
    )
    image_size: int = _f(32, "training resolution in pixels", min=8, max=1024)
    progressive_from: int = _f(
        0,
        "progressive resizing: train the first steps at this many pixels, growing to image_size by "
        "85 % of the run (0 = off)",
        min=0,
        max=1024,
    )
    cache_size: int = _f(0, "side of the decoded cache in pixels (0 = automatic)", min=0, max=2048)
    tile_px: int = _f(224, "whole-slide images: tile side in pixels", min=16, max=4096)
    tile_mpp: float = _f(
        0.5,
        "whole-slide images: tile resolution in µm per pixel (0.5 is about 20x; 0 = full "
        "resolution)",
        min=0.0,
        max=100.0,
    )
    tile_tissue: float = _f(
        0.5,
        "whole-slide images: the share of a tile that must be tissue for it to be kept",
        min=0.05,
        max=1.0,
    )
    preset: str = _f(
        "natural",
        "augmentation preset",
        choices=("natural", "histopathology", "microscopy", "custom"),
    )
    input_norm: str = _f(
        "none",
        "colour normalisation of every image before the network sees it, in training, embedding "
        "and the exported tool ('reinhard': each tile's Lab colour moved to fixed H&E statistics)",
        choices=("none", "reinhard"),
    )
    init_blend: float = _f(
        0.0,
        "share of the untrained network in the features: every checkpoint's weights are used "
        "blended with the run's step-0 weights (weight-space ensembling, as WiSE-FT) for "
        "embedding, Explore and export; training and resume use the trained weights (0 = off)",
        min=0.0,
        max=0.9,
    )
    check_folder: str = _f(
        "",
        "labelled images from other slides, another staining day or scanner (one subfolder per "
        "class, named as the training folder's), never trained on: at every probe the training "
        "folder's labelled images answer them by kNN, beside random init, and that verdict "
        "picks the checkpoint (empty = no check)",
    )
    augment: AugmentConfig = field(
        default_factory=AugmentConfig, metadata={"help": "augmentation parameters"}
    )
    optim: OptimConfig = field(default_factory=OptimConfig, metadata={"help": "optimizer"})
    method_options: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "the method's own settings"}
    )
    epochs: int = _f(100, "passes over the folder", min=1, max=100_000)
    max_steps: int = _f(0, "stop after this many steps (0 = run all epochs)", min=0, max=10**9)
    batch_size: int = _f(256, "images per step", min=2, max=65_536)
    seed: int = _f(
        0, "random seed (data order, augmentations, initialisation)", min=0, max=2**31 - 1
    )
    device: str = _f("auto", "where to train", choices=("auto", "cpu", "cuda", "mps"))
    amp: bool = _f(True, "mixed precision on GPU (bf16 where supported)")
    channels_last: bool = _f(True, "channels-last memory format on GPU")
    compile: bool = _f(
        False, "torch.compile the backbone on GPU (a minute's start-up for faster steps)"
    )
    threads: int = _f(
        0, "CPU threads for training (0 = all but one when a window is open)", min=0, max=1024
    )
    checkpoint_every: int = _f(
        200, "save a checkpoint every N steps (and at the end)", min=1, max=10**9
    )
    monitor_every: int = _f(100, "collapse metrics every N steps (0 = off)", min=0, max=10**9)
    probe_size: int = _f(
        256, "images in the fixed probe set for the collapse monitor", min=16, max=100_000
    )
    step_seconds: dict[str, float] = field(
        default_factory=dict,
        metadata={
            "help": "seconds per training step by image size, as the budget planner measured them "
            "(the deadline's first estimate; empty = learn as the run goes)"
        },
    )
    time_budget_s: float = _f(
        0.0,
        "finish the whole run, evaluation and checkpoints included, within this many seconds (0 = "
        "no limit)",
        min=0.0,
        max=1e7,
    )
    deterministic: bool = _f(False, "deterministic kernels (slower; exact resume on GPU)")
    out: str = _f("", "run folder (empty = a new folder under the user's runs directory)")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["version"] = CONFIG_VERSION
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        data = dict(data)
        version = data.pop("version", CONFIG_VERSION)
        if version > CONFIG_VERSION:
            raise ConfigError(
                f"config version {version} is newer than this SSL Studio understands "
                f"({CONFIG_VERSION})"
            )
        return _build(cls, data, "config")

    @classmethod
    def load(cls, path: str | Path) -> RunConfig:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read config {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"config {path} must hold a JSON object")
        return cls.from_dict(data)


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    """Build a (nested) config dataclass from plain data, type-checking each field."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be an object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown {where} field(s): {', '.join(unknown)}")
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(hints[name], value, f"{where}.{name}")
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, where: str) -> Any:
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where)
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return value
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be an object")
        return dict(value)
    rule = _SCALARS.get(tp)
    if rule is None:
        return value
    fits, words, convert = rule
    if not fits(value):
        raise ConfigError(f"{where} must be {words}, got {value!r}")
    return convert(value)


# JSON scalars a field of each type takes: bool is an int to Python, never to a config
_SCALARS: dict[type, tuple[Any, str, Any]] = {
    bool: (lambda v: isinstance(v, bool), "true or false", lambda v: v),
    int: (lambda v: isinstance(v, int) and not isinstance(v, bool), "a whole number", lambda v: v),
    float: (
        lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "a number",
        float,
    ),
    str: (lambda v: isinstance(v, str), "text", lambda v: v),
}


def field_problems(obj: Any, where: str = "") -> list[str]:
    """Range and choice violations of a config dataclass, as messages naming each field."""
    problems = []
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        name = f"{where}{f.name}"
        if dataclasses.is_dataclass(value):
            problems += field_problems(value, f"{name}.")
            continue
        meta = f.metadata
        wrong = _wrong_type(value, f.default)
        if wrong:
            problems.append(f"{name} must be {wrong}, got {value!r}")
            continue
        if isinstance(value, float) and not math.isfinite(value):
            problems.append(f"{name} must be finite, got {value}")
        if "min" in meta and isinstance(value, (int, float)) and value < meta["min"]:
            problems.append(f"{name} must be >= {meta['min']}, got {value}")
        if "max" in meta and isinstance(value, (int, float)) and value > meta["max"]:
            problems.append(f"{name} must be <= {meta['max']}, got {value}")
        if "choices" in meta and value not in meta["choices"]:
            problems.append(f"{name} must be one of {', '.join(meta['choices'])}; got {value!r}")
    return problems


def _wrong_type(value: Any, default: Any) -> str | None:
    """What a value of a field with a plain default should be, when it is not (an option typed
    by hand: ``temperature=abc``); None when it fits."""
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "true or false"
    if isinstance(default, int):
        return None if isinstance(value, int) and not isinstance(value, bool) else "a whole number"
    if isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return None if ok else "a number"
    if isinstance(default, str) and not isinstance(value, str):
        return "text"
    return None


def validate(cfg: RunConfig) -> None:
    """Refuse a config before any work starts; cross-field rules live here too."""
    problems = field_problems(cfg)
    a = cfg.augment
    if a.crop_scale_min > a.crop_scale_max:
        problems.append(
            f"augment.crop_scale_min ({a.crop_scale_min}) exceeds crop_scale_max "
            f"({a.crop_scale_max})"
        )
    if a.blur_sigma_min > a.blur_sigma_max:
        problems.append(
            f"augment.blur_sigma_min ({a.blur_sigma_min}) exceeds blur_sigma_max "
            f"({a.blur_sigma_max})"
        )
    if not cfg.data_root:
        problems.append("data_root is empty: choose a folder of images")
    elif not Path(cfg.data_root).is_dir():
        problems.append(f"data_root {cfg.data_root!r} is not a folder")
    problems += check_folder_problems(cfg)
    bad = {
        k: v
        for k, v in cfg.step_seconds.items()
        if not (str(k).isdigit() and isinstance(v, (int, float)) and v > 0)
    }
    if bad:
        problems.append(f"step_seconds must map sizes in pixels to positive seconds, got {bad}")
    if cfg.progressive_from and not 8 <= cfg.progressive_from < cfg.image_size:
        problems.append(
            f"progressive_from ({cfg.progressive_from}) must be 0 (off) or from 8 up to below "
            f"image_size ({cfg.image_size})"
        )
    if cfg.cache_size and cfg.cache_size < cfg.image_size:
        problems.append(
            f"cache_size ({cfg.cache_size}) must be 0 or at least image_size ({cfg.image_size})"
        )
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))


def check_folder_problems(cfg: RunConfig) -> list[str]:
    """A check folder that is not a folder, or whose images the run would train on."""
    if not cfg.check_folder:
        return []
    check = Path(cfg.check_folder).expanduser()
    if not check.is_dir():
        return [f"check_folder {cfg.check_folder!r} is not a folder"]
    if cfg.data_root and Path(cfg.data_root).is_dir():
        data, check = Path(cfg.data_root).resolve(), check.resolve()
        if check == data or data in check.parents:
            return [
                f"check_folder {cfg.check_folder!r} lies inside the training folder: its images "
                "would be trained on; choose images from other slides"
            ]
    return []
