"""``sslstudio train``: flags to a RunConfig, an optional time-budget plan, and a progress line."""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import sys
import threading
import time
from pathlib import Path

from sslstudio.config import DEFAULT_TIME_S, RunConfig
from sslstudio.core.events import (
    Event,
    PlanRevised,
    Preparing,
    RunFailed,
    RunFinished,
    RunStarted,
    RunStopped,
    StepLogged,
    describe,
    to_json,
)

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
        "tile_tissue": getattr(args, "tile_tissue", None),
        "check_folder": _folder(getattr(args, "check_folder", None)),
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


def _folder(path: str | None) -> str | None:
    return None if path is None else str(Path(path).expanduser())


def _plan_budget(cfg, args):
    """The budget plan for ``cfg``; the flags the user gave stay as given."""
    import time

    from sslstudio.core.data.indexstore import open_index
    from sslstudio.core.data.scan import require_usable
    from sslstudio.core.train.budget import plan_budget
    from sslstudio.core.train.deadline import parse_duration
    from sslstudio.core.train.prepare import median_short_side
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


def _no_length_given(args: argparse.Namespace) -> bool:
    """Neither epochs, steps, a time nor a config (which holds its own length) was given."""
    given = (args.epochs, args.max_steps, args.budget, args.config, args.resume)
    return all(v is None or v == "" for v in given)


def _recognised_preset(cfg: RunConfig) -> tuple[RunConfig, str]:
    """``cfg`` with the preset the folder's pixels suggest (the window's choice on opening it),
    and a line that says why."""
    from sslstudio.core.data.indexstore import open_index
    from sslstudio.core.transforms.presets import preset
    from sslstudio.core.transforms.recognise import recognise_index
    from sslstudio.imaging.slides import SlideOptions
    from sslstudio.paths import cache_dir

    index = open_index(cfg.data_root, cache_dir(), tiling=SlideOptions.of(cfg))
    found = recognise_index(index)
    cfg = dataclasses.replace(
        cfg, preset=found.preset, augment=preset(found.preset, cfg.image_size)
    )
    return cfg, f"preset {found.preset}: {found.reason} (--preset to choose another)"


def _parse_value(text: str):
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def cmd_train(args: argparse.Namespace) -> int:
    from sslstudio.core.methods import check_run_config

    cfg, recognised, recognised_time = _config_for(args)
    world = None
    if getattr(args, "distributed", False):
        from sslstudio.core.train import distributed

        world = distributed.init_from_env(cfg.device)
    budget = None
    if args.budget and not args.resume:
        cfg, budget = _budget_plan(cfg, args, world, recognised_time)
        if args.plan_only:
            _leave_group(world)
            return 0
    check_run_config(cfg)  # before any work
    if recognised and not args.quiet:  # after the check: an error stays the first line
        print(recognised, file=sys.stderr)
    return _run(cfg, args, world, budget)


# flags that shape a run: a resumed run keeps its own (its schedule was planned to its length)
_SHAPING = [
    "folder",
    "config",
    "method",
    "backbone",
    "image_size",
    "progressive_from",
    "batch_size",
    "epochs",
    "max_steps",
    "preset",
    "optimizer",
    "lr",
    "weight_decay",
    "warmup_epochs",
    "weights",
    "small_stem",
    "tile_px",
    "tile_tissue",
    "tile_mpp",
    "check_folder",
    "seed",
    "checkpoint_every",
    "monitor_every",
    "option",
    "out",
    "budget",
]


def _refuse_ignored(args: argparse.Namespace) -> None:
    """A flag given with --resume that the resumed run would not use is an error, not a surprise
    at the end (``--resume RUN --epochs 300`` would otherwise finish at the run's own length)."""
    from sslstudio.errors import ConfigError

    given = [name for name in _SHAPING if getattr(args, name, None) not in (None, [], False)]
    if not given:
        return
    flags = ", ".join("FOLDER" if n == "folder" else "--" + n.replace("_", "-") for n in given)
    raise ConfigError(
        f"--resume continues {args.resume} as it was planned, so {flags} would be ignored "
        "(only --device and --threads may change). To train further or differently, start a "
        f"new run from its weights: --weights {Path(args.resume) / 'checkpoints' / 'final'}"
        "/model.safetensors"
    )


def _config_for(args: argparse.Namespace) -> tuple[RunConfig, str, str]:
    """(config, the preset the folder was recognised as, the default-time note) from the flags
    or the run to resume."""
    from sslstudio.core.train.runs import load_run_config
    from sslstudio.errors import ConfigError

    recognised = recognised_time = ""
    if args.resume:
        _refuse_ignored(args)
        cfg = load_run_config(Path(args.resume))
        if args.device or args.threads:
            cfg = dataclasses.replace(
                cfg, device=args.device or cfg.device, threads=args.threads or cfg.threads
            )
        return cfg, recognised, recognised_time
    if not args.folder and not args.config:
        raise ConfigError("train needs a FOLDER of images (or --resume RUN)")
    cfg = config_from_args(args)
    if _no_length_given(args):  # time first: the stated default time, planned
        args.budget = f"{DEFAULT_TIME_S:.0f}s"
        recognised_time = (
            f"no --epochs, --max-steps or --budget: planning for the default "
            f"{DEFAULT_TIME_S / 60:.0f} minutes"
        )
    if args.preset is None and not args.config and Path(cfg.data_root).is_dir():
        cfg, recognised = _recognised_preset(cfg)  # else validate() says what is wrong
    return cfg, recognised, recognised_time


def _budget_plan(cfg: RunConfig, args, world, recognised_time: str):
    """(the planned config, the plan): rank 0 times the steps; the others take its plan."""
    from sslstudio.core.methods import check_run_config

    budget = None
    if world is None or world.main:
        if recognised_time:  # the user asked for no plan: a wrong flag is told first
            check_run_config(cfg)
            print(recognised_time, file=sys.stderr)
        budget = _plan_budget(cfg, args)
        print(budget.summary(), file=sys.stderr)
        cfg = budget.config
    if world is not None:
        from sslstudio.core.train import distributed

        # planned for one process: the deadline then paces the run on all of them (the pace is
        # agreed every step), adding steps when the shared batch goes faster
        cfg = RunConfig.from_dict(
            json.loads(distributed.broadcast_text(cfg.to_json() if world.main else ""))
        )
    return cfg, budget


def _leave_group(world, clean: bool = True) -> None:
    """Leave the process group; after a clean end, only once every rank has got there (a rank
    tearing gloo down while its peer still sent to it crashed the peer at exit: 'terminate
    called without an active exception'). After a failure no barrier: a peer may never come."""
    if world is not None:
        import torch.distributed

        if clean:
            torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def _run(cfg: RunConfig, args: argparse.Namespace, world, budget) -> int:
    """Train, printing progress; Ctrl-C (or SIGTERM) stops after the step and checkpoints."""
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
            if isinstance(ev, RunStarted) and budget is not None and ev.start_step == 0:
                budget.save(ev.run_dir)
            bar.show(ev)
            if isinstance(ev, RunStopped):
                return EXIT_INTERRUPTED
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        _leave_group(world, clean=sys.exc_info()[0] is None)
    return 0


def _said_when_quiet(ev: Event) -> bool:
    """Quiet keeps what needs a person: how the run ended, a changed plan, a warning."""
    ending = (RunStopped, RunFailed, RunFinished, PlanRevised)
    return isinstance(ev, ending) or bool(getattr(ev, "warning", None))


class _Progress:
    """One status line on stderr, redrawn at most 4 times a second, and the events' sentences
    (``events.describe``, the same the window's Train page logs) between them."""

    def __init__(self, quiet: bool, silent: bool = False) -> None:
        self.quiet = quiet or silent
        self.silent = silent
        self.total = 0
        self._last = 0.0
        self.tty = sys.stderr.isatty()

    def message(self, text: str) -> None:
        if self.silent:
            return
        print(("\n" if self.tty and not self.quiet else "") + text, file=sys.stderr)

    def show(self, ev: Event) -> None:
        if isinstance(ev, Preparing):
            self.preparing(ev)
        elif isinstance(ev, StepLogged):
            self.step(ev)
        elif isinstance(ev, (RunStarted, PlanRevised)):
            self.total = ev.total_steps
        text = describe(ev)
        if text and (not self.quiet or _said_when_quiet(ev)):
            self.message(text)
        if isinstance(ev, RunStopped) and (ev.run_dir or ev.path):
            run_dir = ev.run_dir or str(Path(ev.path).parent.parent)
            self.message(f"resume with: sslstudio train --resume {run_dir}")
        elif isinstance(ev, RunFinished):
            self.message(f"run folder: {Path(ev.path).parent.parent}")

    def preparing(self, ev: Preparing) -> None:
        now = time.monotonic()
        if self.quiet or not self.tty or now - self._last < 0.25:
            return
        self._last = now
        what = {"scan": "scanning images", "check": "reading the check folder"}
        count = f"{ev.done:,}/{ev.total:,}" if ev.total else f"{ev.done:,}"
        print(
            f"\r{what.get(ev.stage, 'decoding images')}: {count}".ljust(60),
            end="",
            file=sys.stderr,
            flush=True,
        )

    def step(self, ev: StepLogged) -> None:
        now = time.monotonic()
        last = ev.step + 1 == self.total
        if self.quiet or (now - self._last < 0.25 and not last):
            return
        self._last = now
        pct = 100 * (ev.step + 1) / max(1, self.total)
        eta = time.strftime("%H:%M:%S", time.gmtime(ev.eta_s))
        line = (
            f"step {ev.step + 1}/{self.total} [{pct:5.1f}%] epoch {ev.epoch + 1} loss "
            f"{ev.loss:.4f} "
            f"lr {ev.lr:.2e} {ev.images_per_s:.0f} img/s ETA {eta}"
        )
        if self.tty:
            print("\r" + line.ljust(100), end="", file=sys.stderr, flush=True)
        elif (ev.step + 1) % 50 == 0 or last:
            print(line, file=sys.stderr)
