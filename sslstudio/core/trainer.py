"""The training engine: one generator that reads top to bottom and speaks in events.

``for event in train(cfg): ...`` — the CLI prints the events, the GUI forwards them through
one signal, tests collect them. Everything a step needs is derived from (seed, step): the data
order from (seed, epoch), each view's random parameters from (seed, step). A checkpoint
therefore only needs weights, optimizer state and the step to resume *exactly*.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from sslstudio.config import RunConfig, validate
from sslstudio.core import checkpoints as ckpt
from sslstudio.core.background import in_background
from sslstudio.core.data.cache import CacheCancelled, build_cache
from sslstudio.core.data.loader import BatchLoader
from sslstudio.core.data.scan import ScanCancelled, require_usable, scan_folder
from sslstudio.core.device import describe, pick_device
from sslstudio.core.errors import CheckpointError, ConfigError, DivergedError
from sslstudio.core.events import (
    CheckpointSaved,
    EpochEnded,
    Event,
    RunFailed,
    RunFinished,
    RunStarted,
    RunStopped,
    StepLogged,
)
from sslstudio.core.methods import build_method, method_config
from sslstudio.core.models.backbones import backbone_info
from sslstudio.core.monitor import run_probe
from sslstudio.core.optimizers import build_optimizer
from sslstudio.core.runs import (
    MetricsLog,
    RunLock,
    config_differences,
    load_run_config,
    new_run_dir,
)
from sslstudio.core.schedules import cosine_schedule, scaled_lr
from sslstudio.core.transforms.views import (
    ViewPipeline,
    default_cache_size,
    step_generator,
)
from sslstudio.paths import cache_dir


def make_plan(cfg: RunConfig, num_images: int) -> dict:
    """The run's plan: what 'step k' means. Stored in every checkpoint; a resume reuses it."""
    batch = min(cfg.batch_size, num_images)
    if batch < 2:
        raise ConfigError(f"training needs at least 2 usable images, found {num_images}")
    steps_per_epoch = num_images // batch
    total = cfg.epochs * steps_per_epoch
    if cfg.max_steps:
        total = min(total, cfg.max_steps)
    return {
        "batch_size": batch,
        "steps_per_epoch": steps_per_epoch,
        "total_steps": total,
        "num_images": num_images,
        "peak_lr": scaled_lr(cfg.optim.lr, batch),
        "warmup_steps": int(round(cfg.optim.warmup_epochs * steps_per_epoch)),
        "revisions": [],
    }


def train(
    cfg: RunConfig,
    stop: threading.Event | None = None,
    resume_from: str | Path | None = None,
    *,
    pause: threading.Event | None = None,
) -> Iterator[Event]:
    """Train ``cfg`` (or resume the run folder ``resume_from``), yielding events.

    Raises (after yielding ``RunFailed`` when the run had started): ``ConfigError`` before
    anything starts, ``DivergedError`` on a non-finite loss, ``CheckpointError`` when a save
    fails. The last good checkpoint is intact in every case.
    """
    validate(cfg)
    method_config(cfg.method, cfg.method_options)  # refuse bad options before a run folder exists
    try:
        backbone_info(cfg.backbone)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    resume_dir = Path(resume_from) if resume_from else None
    start: ckpt.Checkpoint | None = None
    notices: list[str] = []
    if resume_dir is not None:
        if (resume_dir / "meta.json").exists():  # a checkpoint folder was given: use its run
            resume_dir = resume_dir.parent.parent
        diffs = config_differences(load_run_config(resume_dir), cfg)
        if diffs:
            raise ConfigError("cannot resume with a different model: " + "; ".join(diffs))
        ckpt.clean_stray(resume_dir)
        start, damaged = ckpt.latest_good(resume_dir)
        notices += [f"skipped a damaged checkpoint: {m}" for m in damaged]
        run_dir = resume_dir
    else:
        run_dir = new_run_dir(cfg)
    lock = RunLock(run_dir).acquire()
    try:
        yield from _train(cfg, run_dir, start, notices, stop, pause)
    finally:
        lock.release()


def _train(cfg, run_dir: Path, start, notices, stop, pause) -> Iterator[Event]:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    device, dev_notices = pick_device(cfg.device)
    notices += dev_notices

    cancel = stop or threading.Event()
    try:
        index = yield from in_background(
            "scan",
            lambda progress: scan_folder(
                cfg.data_root, verify=False, progress=progress, cancel=cancel
            ),
        )
        require_usable(index)
        side = cfg.cache_size or default_cache_size(cfg.image_size, _median_short_side(index))
        data = yield from in_background(
            "decode",
            lambda progress: build_cache(
                index, side, cache_dir(), progress=progress, cancel=cancel
            ),
        )
    except (ScanCancelled, CacheCancelled):
        last = str(start.path) if start is not None else ""
        yield RunStopped(
            step=int(start.meta["step"]) if start is not None else 0,
            path=last,
            run_dir=str(run_dir),
        )
        return
    if data.failed or index.skipped:
        notices.append(
            f"{len(index.skipped) + len(data.failed)} file(s) skipped: "
            + _reasons(index.skipped + data.failed)
        )
    n = len(data)

    torch.manual_seed(cfg.seed)
    method = build_method(cfg).to(device)
    use_cl = cfg.channels_last and device.type == "cuda"
    if use_cl:
        method = method.to(memory_format=torch.channels_last)
    if cfg.compile and device.type == "cuda":
        # in place: the state-dict keys (and so checkpoints and export) stay those of the module
        method.backbone.compile()
    if start is not None:
        plan = start.meta["plan"]
        if start.meta.get("fingerprint") != index.fingerprint() or plan["num_images"] != n:
            notices.append(
                f"the folder changed since this checkpoint ({plan['num_images']} -> {n} usable images): "
                "training continues on the folder as it is now; the data order differs from an uninterrupted run"
            )
            batch = min(plan["batch_size"], n)
            revision = {
                "at_step": int(start.meta["step"]),
                "reason": "folder changed",
                "num_images": n,
                "batch_size": batch,
            }
            plan = {
                **plan,
                "num_images": n,
                "batch_size": batch,
                "steps_per_epoch": max(1, n // batch),
                "revisions": [*plan.get("revisions", []), revision],
            }
    else:
        plan = make_plan(cfg, n)
    bs, spe, total = plan["batch_size"], plan["steps_per_epoch"], plan["total_steps"]
    lr_sched = cosine_schedule(
        plan["peak_lr"], plan["peak_lr"] * cfg.optim.min_lr_ratio, total, plan["warmup_steps"]
    )
    opt = build_optimizer(method, cfg.optim, float(lr_sched[0]))
    amp_dtype = _amp_dtype(cfg, device)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None

    method.on_train_start(n, total)
    step = 0
    if start is not None:
        model_state, train_state, _ = ckpt.load_checkpoint(start.path)
        ckpt.load_model_state(method, model_state, start.path)
        opt.load_state_dict(train_state["optimizer"])
        if "torch_rng" in train_state:  # methods drawing from the global RNG resume exactly too
            torch.set_rng_state(train_state["torch_rng"])
        if scaler is not None and "scaler" in train_state:
            scaler.load_state_dict(train_state["scaler"])
        step = int(start.meta["step"])
    # rows past the checkpoint (a crash after it) are dropped: no gaps, no duplicates
    log = MetricsLog(run_dir / "metrics.jsonl", resume_step=step)

    pipeline = ViewPipeline(method.view_specs(cfg), constraints=method.constraints)
    probe_rows = np.sort(np.random.default_rng(cfg.seed).permutation(n)[: min(cfg.probe_size, n)])
    labels = data.labels()
    last_ckpt = str(start.path) if start is not None else None
    yield RunStarted(
        run_dir=str(run_dir),
        device=describe(device),
        total_steps=total,
        steps_per_epoch=spe,
        batch_size=bs,
        start_step=step,
        num_images=n,
        lr_schedule=tuple(float(x) for x in lr_sched),
        notices=tuple(notices),
    )
    log.write(
        "start", step=step, total_steps=total, device=describe(device), plan=plan, notices=notices
    )

    def save(name: str) -> str:
        meta = {
            "step": step,
            "samples_seen": step * bs,
            "epoch": step // spe,
            "plan": plan,
            "config": cfg.to_dict(),
            "fingerprint": index.fingerprint(),
            "run_dir": str(run_dir),
        }
        state = {"optimizer": opt.state_dict(), "torch_rng": torch.get_rng_state()}
        if scaler is not None:
            state["scaler"] = scaler.state_dict()
        path = ckpt.save_checkpoint(run_dir, name, method.state_dict(), state, meta)
        ckpt.prune(run_dir)
        log.write("checkpoint", step=step, path=str(path))
        return str(path)

    loader = BatchLoader(data, cfg.seed, bs, spe, pin=device.type == "cuda")
    losses: list[float] = []
    epoch_losses: list[float] = []
    step_time = None
    last_loss = float("nan")
    # steps queued on the device whose loss is not read yet: reading waits for the device, so on
    # a GPU the newest step stays unread while the CPU prepares the next batch and its views
    pending: list[tuple] = []
    lag = _settle_lag(device)
    settled_at = time.perf_counter()

    def settle(keep: int) -> Iterator[StepLogged]:
        nonlocal step_time, last_loss, settled_at
        while len(pending) > keep:
            s, ep, loss_t, extra, lr, t_start, t_data = pending.pop(0)
            last_loss = loss_t.item()
            if not math.isfinite(last_loss):
                raise DivergedError(s, last_loss)
            now = time.perf_counter()
            dt = now - max(t_start, settled_at)
            settled_at = now
            step_time = dt if step_time is None else 0.9 * step_time + 0.1 * dt
            losses.append(last_loss)
            epoch_losses.append(last_loss)
            ev = StepLogged(
                step=s,
                epoch=ep,
                samples_seen=(s + 1) * bs,
                loss=last_loss,
                lr=lr,
                images_per_s=bs / dt,
                data_wait=min(1.0, t_data / dt),
                eta_s=step_time * (total - s - 1),
                extra={k: float(v) for k, v in extra.items()},
            )
            log.write("step", **_asdict(ev))
            yield ev

    try:
        while step < total:
            if pause is not None and pause.is_set():
                yield from settle(0)  # show the last step before waiting
            while pause is not None and pause.is_set() and not (stop is not None and stop.is_set()):
                time.sleep(0.05)
            if pending and (
                (stop is not None and stop.is_set())
                or cfg.monitor_every
                and step % cfg.monitor_every == 0
            ):
                yield from settle(0)
            if stop is not None and stop.is_set():
                if (last_ckpt is None and step > 0) or (
                    last_ckpt and ckpt.read_meta(Path(last_ckpt))["step"] != step
                ):
                    last_ckpt = save(f"step_{step:07d}")
                log.write("stopped", step=step)
                yield RunStopped(step=step, path=last_ckpt or "", run_dir=str(run_dir))
                return
            if cfg.monitor_every and step % cfg.monitor_every == 0:
                ev = run_probe(method, data, probe_rows, labels, cfg.image_size, device, step)
                log.write("monitor", **_asdict(ev))
                yield ev
            t0 = time.perf_counter()
            epoch = step // spe
            idx, batch = loader.get(step)
            batch = batch.to(device, non_blocking=True)
            views = pipeline(batch, step_generator(cfg.seed, step))
            if use_cl:
                views = [v.contiguous(memory_format=torch.channels_last) for v in views]
            t_data = time.perf_counter() - t0
            lr = float(lr_sched[step])
            for group in opt.param_groups:
                group["lr"] = lr
            method.train()
            with (
                torch.autocast(device.type, dtype=amp_dtype)
                if amp_dtype
                else contextlib.nullcontext()
            ):
                if method.wants_indices:
                    loss, extra = method.training_step(
                        views, indices=torch.from_numpy(idx).to(device)
                    )
                else:
                    loss, extra = method.training_step(views)
            opt.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                opt.step()
            method.on_step_end(step, total)
            pending.append((step, epoch, loss.detach(), extra, lr, t0, t_data))
            yield from settle(lag)
            step += 1
            if step % spe == 0 or step == total or step % cfg.checkpoint_every == 0:
                yield from settle(0)
            if step % spe == 0 or step == total:
                mean = float(np.mean(epoch_losses)) if epoch_losses else float("nan")
                log.write("epoch", epoch=epoch, step=step - 1, mean_loss=mean)
                yield EpochEnded(epoch=epoch, step=step - 1, mean_loss=mean)
                epoch_losses = []
            if step % cfg.checkpoint_every == 0 and step < total:
                last_ckpt = save(f"step_{step:07d}")
                yield CheckpointSaved(step=step, path=last_ckpt)
        if cfg.monitor_every:
            ev = run_probe(method, data, probe_rows, labels, cfg.image_size, device, step)
            log.write("monitor", **_asdict(ev))
            yield ev
        last_ckpt = save("final")
        log.write("finished", step=step)
        yield RunFinished(step=step, path=last_ckpt, final_loss=last_loss)
    except (DivergedError, CheckpointError, RuntimeError, OSError) as exc:
        with contextlib.suppress(Exception):
            log.write("failed", step=step, message=str(exc))
        yield RunFailed(
            step=step, message=f"{type(exc).__name__}: {exc}", last_checkpoint=last_ckpt
        )
        raise
    finally:
        loader.close()
        log.close()


def _settle_lag(device: torch.device) -> int:
    """Steps left unread on the device: 1 on a GPU (overlap), 0 where every op is synchronous."""
    return 1 if device.type == "cuda" else 0


def _amp_dtype(cfg: RunConfig, device: torch.device) -> torch.dtype | None:
    if not cfg.amp or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _median_short_side(index) -> int | None:
    sides = [min(r.width, r.height) for r in index.images[:2000]]
    return int(np.median(sides)) if sides else None


def _reasons(skipped) -> str:
    counts: dict[str, int] = {}
    for f in skipped:
        cat = f.reason.split(" (")[0].split(":")[0]
        counts[cat] = counts.get(cat, 0) + 1
    return ", ".join(f"{c} {r}" for r, c in sorted(counts.items(), key=lambda t: -t[1]))


def _asdict(ev) -> dict:
    return {k: getattr(ev, k) for k in ev.__slots__}
