"""The command line equivalent to a run configured in the window (for scripts, clusters, notes)."""

from __future__ import annotations

import shlex
import subprocess
import sys

from sslstudio.config import OptimConfig, RunConfig


def quote(arg: str) -> str:
    return subprocess.list2cmdline([arg]) if sys.platform == "win32" else shlex.quote(arg)


def command_line(cfg: RunConfig, method_defaults: dict[str, object] | None = None) -> str:
    """``sslstudio train FOLDER --method ... --optimizer ...`` reproducing ``cfg``.

    The main choices are always written; other flags only when they differ from the defaults,
    and method options only when they differ from ``method_defaults``. Custom augmentation
    values have no flags: the preset is then omitted (a saved config.json carries them).
    """
    d, od = RunConfig(), OptimConfig()
    args = [
        "sslstudio",
        "train",
        quote(cfg.data_root or "FOLDER"),
        "--method",
        cfg.method,
        "--backbone",
        cfg.backbone,
        "--image-size",
        str(cfg.image_size),
        "--batch-size",
        str(cfg.batch_size),
        "--epochs",
        str(cfg.epochs),
    ]
    if cfg.preset != "custom":
        args += ["--preset", cfg.preset]
    # the optimiser in full: the command line starts from the method's own defaults
    args += [
        "--lr",
        f"{cfg.optim.lr:g}",
        "--optimizer",
        cfg.optim.optimizer,
        "--weight-decay",
        f"{cfg.optim.weight_decay:g}",
    ]
    optional = (
        ("--warmup-epochs", cfg.optim.warmup_epochs, od.warmup_epochs, "g"),
        ("--max-steps", cfg.max_steps, d.max_steps, "d"),
        ("--seed", cfg.seed, d.seed, "d"),
        ("--device", cfg.device, d.device, "s"),
        ("--small-stem", cfg.small_stem, d.small_stem, "s"),
        ("--progressive-from", cfg.progressive_from, d.progressive_from, "d"),
        ("--checkpoint-every", cfg.checkpoint_every, d.checkpoint_every, "d"),
        ("--monitor-every", cfg.monitor_every, d.monitor_every, "d"),
        ("--tile-px", cfg.tile_px, d.tile_px, "d"),
        ("--tile-mpp", cfg.tile_mpp, d.tile_mpp, "g"),
        ("--tile-tissue", cfg.tile_tissue, d.tile_tissue, "g"),
    )
    for flag, value, default, fmt in optional:
        if value != default:
            args += [flag, format(value, fmt)]
    if cfg.weights:
        args += ["--weights", quote(cfg.weights)]
    if cfg.check_folder:
        args += ["--check-folder", quote(cfg.check_folder)]
    if cfg.time_budget_s:  # the CLI plans again and keeps every flag given here
        args += ["--budget", f"{round(cfg.time_budget_s)}s"]
    defaults = method_defaults or {}
    for key, value in sorted(cfg.method_options.items()):
        if key in defaults and defaults[key] == value:
            continue
        text = (
            str(value).lower()
            if isinstance(value, bool)
            else format(value, "g")
            if isinstance(value, float)
            else str(value)
        )
        args += ["--option", quote(f"{key}={text}")]
    return " ".join(args)


def missing_flags(cfg: RunConfig) -> list[str]:
    """Settings of ``cfg`` that differ from the defaults and that no ``train`` flag can express."""
    d, od = RunConfig(), OptimConfig()
    out = [
        f"optim.{name}"
        for name in ("momentum", "min_lr_ratio")
        if getattr(cfg.optim, name) != getattr(od, name)
    ]
    out += [
        name
        for name in ("amp", "channels_last", "probe_size", "cache_size", "deterministic")
        if getattr(cfg, name) != getattr(d, name)
    ]
    if cfg.preset == "custom":
        out.append("custom augmentations")
    return out
