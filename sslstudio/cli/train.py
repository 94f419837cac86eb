"""``sslstudio train``: flags to a RunConfig, an optional time-budget plan, and a progress line."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import signal
import sys
import threading
import time
from pathlib import Path

from sslstudio.config import RunConfig

EXIT_INTERRUPTED = 130


def config_from_args(args: argparse.Namespace) -> RunConfig:
    from sslstudio.core.transforms.presets import preset
    from sslstudio.errors import ConfigError

    base = RunConfig.load(args.config) if args.config else RunConfig()
    if args.folder:
        base = dataclasses.replace(base, data_root=str(Path(args.folder).expanduser()))
    simple = {
        "method": args.method,
        "backbone": args.backbone,
        "image_size": args.image_size,
        "progressive_from": getattr(args, "progressive_from", None),
        "batch_size": args.batch_size,
        "epochs": args.epochs,
        "max_steps": args.max_steps,
        "weights": args.weights,
        "small_stem": args.small_stem,
        "seed": args.seed,
        "device": args.device,
        "threads": args.threads,
        "checkpoint_every": args.checkpoint_every,
        "monitor_every": args.monitor_every,
        "out": args.out,
        "preset": args.preset,
        "tile_px": getattr(args, "tile_px", None),
        "tile_mpp": getattr(args, "tile_mpp", None),
    }
    cfg = dataclasses.replace(base, **{k: v for k, v in simple.items() if v is not None})
    if args.preset or not args.config:
        cfg = dataclasses.replace(cfg, augment=preset(cfg.preset, cfg.image_size))
    if not args.config:  # the method's own optimiser defaults; the flags below override them
        from sslstudio.core.methods import method_optim

        cfg = dataclasses.replace(cfg, optim=method_optim(cfg.method))
    optim = {
        "optimizer": args.optimizer,
        "lr": args.lr,
        "weight_decay": args.weight_decay,
        "warmup_epochs": args.warmup_epochs,
    }
    optim = {k: v for k, v in optim.items() if v is not None}
    if optim:
        cfg = dataclasses.replace(cfg, optim=dataclasses.replace(cfg.optim, **optim))
    options = dict(cfg.method_options)
    for item in args.option:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--option takes KEY=VALUE, got {item!r}")
        options[key.strip()] = _parse_value(value.strip())
    return dataclasses.replace(cfg, method_options=options)


def _plan_budget(cfg, args):
    """The budget plan for ``cfg``; the flags the user gave stay as given."""
    import time

    from sslstudio.core.data.indexstore import open_index
    from sslstudio.core.data.scan import require_usable
    from sslstudio.core.train.budget import plan_budget
    from sslstudio.core.train.deadline import parse_duration
    from sslstudio.core.train.stepping import median_short_side
    from sslstudio.errors import ConfigError
    from sslstudio.imaging.slides import SlideOptions
    from sslstudio.paths import cache_dir

    started = time.perf_counter()
    try:
        seconds = parse_duration(args.budget)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    names = {
        "method": "method",
        "backbone": "backbone",
        "image_size": "image_size",
        "progressive_from": "progressive_from",
        "batch_size": "batch_size",
        "small_stem": "small_stem",
        "preset": "preset",
        "optimizer": "optim",
        "lr": "optim",
        "weight_decay": "optim",
        "warmup_epochs": "optim",
    }
    keep = {field for flag, field in names.items() if getattr(args, flag, None) is not None}
    if args.option or ("method" in keep and cfg.method != "simclr"):
        keep.add("method_options")
    index = open_index(cfg.data_root, cache_dir(), tiling=SlideOptions.of(cfg))
    require_usable(index)
    try:
        return plan_budget(
            cfg,
            seconds,
            len(index.images),
            keep=frozenset(keep),
            native_side=median_short_side(index),
            started=started,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


def _parse_value(text: str):
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def cmd_train(args: argparse.Namespace) -> int:
    from sslstudio.core.events import (
        MonitorLogged,
        PlanRevised,
        Preparing,
        RunFailed,
        RunFinished,
        RunStarted,
        RunStopped,
        StepLogged,
        to_json,
    )
    from sslstudio.core.methods import check_backbone, method_config
    from sslstudio.core.train.runs import load_run_config
    from sslstudio.errors import ConfigError

    if args.resume:
        cfg = load_run_config(Path(args.resume))
        if args.device or args.threads:
            cfg = dataclasses.replace(
                cfg, device=args.device or cfg.device, threads=args.threads or cfg.threads
            )
    else:
        if not args.folder and not args.config:
            raise ConfigError("train needs a FOLDER of images (or --resume RUN)")
        cfg = config_from_args(args)
    world = None
    if getattr(args, "distributed", False):
        from sslstudio.core.train import distributed

        world = distributed.init_from_env(cfg.device)
    budget = None
    if args.budget and not args.resume:
        if world is None or world.main:  # rank 0 times the steps; the others take its plan
            budget = _plan_budget(cfg, args)
            print(budget.summary(), file=sys.stderr)
            cfg = budget.config
        if world is not None:
            # planned for one process: the deadline then paces the run on all of them (the
            # pace is agreed every step), adding steps when the shared batch goes faster
            cfg = RunConfig.from_dict(
                json.loads(distributed.broadcast_text(cfg.to_json() if world.main else ""))
            )
        if args.plan_only:
            if world is not None:
                import torch.distributed

                torch.distributed.destroy_process_group()
            return 0
    from sslstudio.config import validate

    validate(cfg)
    method_config(cfg.method, cfg.method_options)  # refuse bad method options before any work
    check_backbone(cfg.method, cfg.backbone)
    from sslstudio.core.train.trainer import train

    stop = threading.Event()

    def on_sigint(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        print("\nstopping after this step (Ctrl-C again to abort)...", file=sys.stderr)

    # SIGTERM too: torchrun forwards it (and SIGINT) to every rank, SLURM sends it before a kill
    old = {sig: signal.signal(sig, on_sigint) for sig in (signal.SIGINT, signal.SIGTERM)}
    main = world is None or world.main
    events_json = getattr(args, "events_json", False)
    bar = _Progress(quiet=args.quiet or events_json, silent=not main)  # rank 0 reports
    try:
        for ev in train(cfg, stop=stop, resume_from=args.resume):
            if events_json and main:
                print(to_json(ev), flush=True)
            if isinstance(ev, Preparing):
                bar.preparing(ev)
            elif isinstance(ev, RunStarted):
                bar.start(ev)
                if budget is not None and ev.start_step == 0:
                    budget.save(ev.run_dir)
            elif isinstance(ev, PlanRevised):
                bar.message(
                    f"plan revised at step {ev.step} ({ev.reason}): batch {ev.batch_size}, {ev.total_steps} steps"
                )
            elif isinstance(ev, StepLogged):
                bar.step(ev)
            elif isinstance(ev, MonitorLogged) and ev.warning:
                bar.message(f"warning at step {ev.step}: {ev.warning}")
            elif isinstance(ev, RunStopped):
                run_dir = ev.run_dir or (str(Path(ev.path).parent.parent) if ev.path else "")
                saved = f"checkpoint {ev.path}" if ev.path else "no step taken yet, nothing to save"
                bar.message(f"stopped at step {ev.step}; {saved}")
                if run_dir:
                    bar.message(f"resume with: sslstudio train --resume {run_dir}")
                return EXIT_INTERRUPTED
            elif isinstance(ev, RunFinished):
                # a finished run resumed takes no step: it has no loss to report, not "nan"
                done = "already finished" if math.isnan(ev.final_loss) else "final loss"
                loss = "" if math.isnan(ev.final_loss) else f" {ev.final_loss:.4f}"
                bar.message(f"finished {ev.step} steps, {done}{loss}")
                if ev.advice:
                    bar.message(f"recommended checkpoint: {ev.recommended} — {ev.advice}")
                bar.message(f"run folder: {Path(ev.path).parent.parent}")
            elif isinstance(ev, RunFailed):
                bar.message(
                    f"failed at step {ev.step}; last good checkpoint: {ev.last_checkpoint or 'none'}"
                )
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        if world is not None:
            import torch.distributed

            torch.distributed.destroy_process_group()
    return 0


class _Progress:
    """One status line on stderr, redrawn at most 4 times a second."""

    def __init__(self, quiet: bool, silent: bool = False) -> None:
        self.quiet = quiet or silent
        self.silent = silent
        self.total = 0
        self.run_dir = ""
        self._last = 0.0
        self.tty = sys.stderr.isatty()

    def message(self, text: str) -> None:
        if self.silent:
            return
        print(("\n" if self.tty and not self.quiet else "") + text, file=sys.stderr)

    def preparing(self, ev) -> None:
        now = time.monotonic()
        if self.quiet or not self.tty or now - self._last < 0.25:
            return
        self._last = now
        what = "scanning" if ev.stage == "scan" else "decoding"
        count = f"{ev.done:,}/{ev.total:,}" if ev.total else f"{ev.done:,}"
        print(f"\r{what} images: {count}".ljust(60), end="", file=sys.stderr, flush=True)

    def start(self, ev) -> None:
        self.total = ev.total_steps
        self.run_dir = ev.run_dir
        self.message(
            f"run {ev.run_dir}\n{ev.num_images} images, batch {ev.batch_size}, {ev.total_steps} steps on {ev.device}"
            + (f" (resuming at step {ev.start_step})" if ev.start_step else "")
        )
        for n in ev.notices:
            self.message(f"note: {n}")

    def step(self, ev) -> None:
        now = time.monotonic()
        last = ev.step + 1 == self.total
        if self.quiet or (now - self._last < 0.25 and not last):
            return
        self._last = now
        pct = 100 * (ev.step + 1) / max(1, self.total)
        eta = time.strftime("%H:%M:%S", time.gmtime(ev.eta_s))
        line = (
            f"step {ev.step + 1}/{self.total} [{pct:5.1f}%] epoch {ev.epoch + 1} loss {ev.loss:.4f} "
            f"lr {ev.lr:.2e} {ev.images_per_s:.0f} img/s ETA {eta}"
        )
        if self.tty:
            print("\r" + line.ljust(100), end="", file=sys.stderr, flush=True)
        elif (ev.step + 1) % 50 == 0 or last:
            print(line, file=sys.stderr)
