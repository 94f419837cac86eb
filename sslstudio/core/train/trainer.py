"""The training engine: one generator that reads top to bottom and speaks in events.

``for event in train(cfg): ...`` — the CLI prints the events, the GUI forwards them through
one signal, tests collect them. Everything a step needs is derived from (seed, step): the data
order from (seed, epoch), each view's random parameters from (seed, step). A checkpoint
therefore only needs weights, optimizer state and the step to resume *exactly*.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from sslstudio.config import RunConfig, validate
from sslstudio.core.train import checkpoints as ckpt
from sslstudio.core.data.cache import CacheCancelled
from sslstudio.core.data.loader import BatchLoader
from sslstudio.core.data.scan import ScanCancelled
from sslstudio.core.train.deadline import Deadline
from sslstudio.core.train.device import describe, pick_device
from sslstudio.errors import ConfigError, DivergedError
from sslstudio.core.events import (
    CheckpointSaved,
    EpochEnded,
    Event,
    MonitorLogged,
    PlanRevised,
    RunFailed,
    RunFinished,
    RunStarted,
    RunStopped,
    StepLogged,
)
from sslstudio.core.methods import build_method, check_backbone, method_config
from sslstudio.core.train.monitor import run_probe
from sslstudio.core.train.optimizers import build_optimizer
from sslstudio.core.train.plan import lr_schedule, make_plan, position, revise
from sslstudio.core.train.ranks import Alone, NullLog, for_this_process
from sslstudio.core.train.resizing import size_schedule, sizes_of_rest, steps_left
from sslstudio.core.train.runs import (
    MetricsLog,
    RunLock,
    config_differences,
    load_run_config,
    new_run_dir,
)
from sslstudio.core.train.stepping import (
    amp_dtype,
    as_row,
    is_out_of_memory,
    optimise,
    out_of_memory_plan,
    prepare,
    recommendation,
    settle_lag,
    skip_reasons,
)
from sslstudio.core.transforms.views import ViewPipeline, step_generator


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
    check_backbone(cfg.method, cfg.backbone, cfg.progressive_from)  # e.g. MAE without a ViT
    ranks = for_this_process(cfg.method)
    resume_dir = Path(resume_from) if resume_from else None
    start: ckpt.Checkpoint | None = None
    notices: list[str] = []
    if resume_dir is not None:
        if (resume_dir / "meta.json").exists():  # a checkpoint folder was given: use its run
            resume_dir = resume_dir.parent.parent
        diffs = config_differences(load_run_config(resume_dir), cfg)
        if diffs:
            raise ConfigError("cannot resume with a different model: " + "; ".join(diffs))
        if ranks.main:
            ckpt.clean_stray(resume_dir)
        start, damaged = ckpt.latest_good(resume_dir)
        notices += [f"skipped a damaged checkpoint: {m}" for m in damaged]
        run_dir = resume_dir
    else:
        run_dir = new_run_dir(cfg) if ranks.main else ""
    run_dir = Path(ranks.run_dir(run_dir))  # under torchrun: rank 0's folder on every rank
    lock = RunLock(run_dir).acquire() if ranks.main else None
    try:
        yield from _train(cfg, run_dir, start, notices, stop, pause, ranks)
    finally:
        if lock is not None:
            lock.release()


def _train(cfg, run_dir: Path, start, notices, stop, pause, ranks: Alone) -> Iterator[Event]:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    spent = float(start.meta.get("train_seconds", 0.0)) if start else 0.0
    timed = {int(k): v for k, v in cfg.step_seconds.items()}
    clock = Deadline(cfg.time_budget_s, spent, cfg.image_size, timed)
    device, dev_notices = pick_device(cfg.device)
    notices += dev_notices

    cancel = stop or threading.Event()
    ranks.before_prepare()
    try:
        index, data = yield from prepare(cfg, cancel)
        data = dataclasses.replace(data, input_norm=cfg.input_norm)  # views and probes alike
    except (ScanCancelled, CacheCancelled):
        last = str(start.path) if start is not None else ""
        step0 = int(start.meta["step"]) if start is not None else 0
        yield RunStopped(step=step0, path=last, run_dir=str(run_dir))
        return
    ranks.after_prepare()
    if data.failed or index.skipped:
        notices.append(
            f"{len(index.skipped) + len(data.failed)} file(s) skipped: "
            + skip_reasons(index.skipped + data.failed)
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
            plan = revise(
                plan,
                int(start.meta["step"]),
                "folder changed",
                num_images=n,
                total_steps=plan["total_steps"],
            )
    else:
        plan = make_plan(cfg, n, multiple=ranks.size)
    bs, spe, total = plan["batch_size"], plan["steps_per_epoch"], plan["total_steps"]
    lr_sched, sizes = lr_schedule(plan, cfg), size_schedule(plan, cfg)
    opt = build_optimizer(method, cfg.optim, float(lr_sched[0]))
    amp = amp_dtype(cfg, device)
    scaler = torch.amp.GradScaler("cuda") if amp == torch.float16 else None

    changed = start is not None and plan is not start.meta["plan"]  # revised above: new folder
    # per-image state is sized as saved, loaded, then rebuilt for the folder as it is now
    method.on_train_start(start.meta["plan"]["num_images"] if changed else n, total)
    step = 0
    selection: dict = {}  # the best checkpoint by the quality signal, and step 0's score
    if start is not None:
        step, selection = ckpt.restore(start, method, opt, scaler)
        if changed:
            method.on_data_changed(n, step)
    ranks.adopt(method)
    # rows past the checkpoint (a crash after it) are dropped: no gaps, no duplicates
    log = MetricsLog(run_dir / "metrics.jsonl", resume_step=step) if ranks.main else NullLog()

    @functools.cache
    def pipeline_for(size: int) -> ViewPipeline:  # progressive resizing trains at a few sizes
        at = dataclasses.replace(cfg, image_size=size)
        return ViewPipeline(method.view_specs(at), constraints=method.constraints)

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
        if not ranks.main:  # rank 0 writes; the others know where
            return str(run_dir / "checkpoints" / name)
        t = time.perf_counter()
        meta = {
            "step": step,
            "samples_seen": step * bs,
            "epoch": position(plan, step)[0],
            "plan": plan,
            "config": cfg.to_dict(),
            "fingerprint": index.fingerprint(),
            "run_dir": str(run_dir),
            "train_seconds": clock.spent(),
            "selection": selection,
        }
        state = {"optimizer": opt.state_dict(), "torch_rng": torch.get_rng_state()}
        if scaler is not None:
            state["scaler"] = scaler.state_dict()
        path = ckpt.save_checkpoint(run_dir, name, method.state_dict(), state, meta)
        ckpt.prune(run_dir)
        log.write("checkpoint", step=step, path=str(path))
        clock.note("save", time.perf_counter() - t)
        return str(path)

    def checkpoint_now() -> None:
        """Save the steps done so far, unless the newest checkpoint already holds them."""
        nonlocal last_ckpt
        newest = int(ckpt.read_meta(Path(last_ckpt))["step"]) if last_ckpt and ranks.main else -1
        if step > 0 and newest != step:
            last_ckpt = save(f"step_{step:07d}")

    def probe() -> MonitorLogged:
        t = time.perf_counter()
        ev = run_probe(
            method, data, probe_rows, labels, cfg.image_size, device, step, cfg.augment, cfg.seed
        )
        log.write("monitor", **as_row(ev))
        clock.note("probe", time.perf_counter() - t)
        signal = "knn_top1" if ev.knn_top1 is not None else "view_top1"
        score = getattr(ev, signal)
        if step == 0 and "reference" not in selection:
            ref = {"view_top1": ev.view_top1, "knn_top1": ev.knn_top1}
            selection.update(reference=ref, signal=signal, n=len(probe_rows))
        elif step > 0 and score > selection.get("best_score", -1.0) and step < total:
            selection.update(best_step=step, best_score=score, signal=signal, best=save("best"))
        return ev

    def apply(new_plan: dict) -> PlanRevised:
        nonlocal plan, bs, spe, total, lr_sched, sizes, loader
        if new_plan["batch_size"] != bs or new_plan["steps_per_epoch"] != spe:
            loader.close()
            loader = BatchLoader(
                data,
                cfg.seed,
                new_plan["batch_size"],
                new_plan["steps_per_epoch"],
                pin=device.type == "cuda",
            )
        plan, lr_sched, sizes = new_plan, lr_schedule(new_plan, cfg), size_schedule(new_plan, cfg)
        bs, spe, total = plan["batch_size"], plan["steps_per_epoch"], plan["total_steps"]
        rev = plan["revisions"][-1]
        log.write("revision", step=step, **rev)
        return PlanRevised(
            step=step,
            reason=rev["reason"],
            batch_size=bs,
            total_steps=total,
            peak_lr=plan["peak_lr"],
            lr_schedule=tuple(float(x) for x in lr_sched),
        )

    loader = BatchLoader(data, cfg.seed, bs, spe, pin=device.type == "cuda")
    epoch_losses: list[float] = []
    step_time = None
    last_loss = float("nan")
    final_score = None
    # steps queued on the device whose loss is not read yet: reading waits for the device, so on
    # a GPU the newest step stays unread while the CPU prepares the next batch and its views
    pending: list[tuple] = []
    lag = settle_lag(device)
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
            epoch_losses.append(last_loss)
            ev = StepLogged(
                step=s,
                epoch=ep,
                samples_seen=(s + 1) * bs,
                loss=last_loss,
                lr=lr,
                images_per_s=bs / dt,
                data_wait=min(1.0, t_data / dt),
                eta_s=step_time * steps_left(sizes, s, total, cfg.image_size),
                extra={k: float(v) for k, v in extra.items()},
            )
            log.write("step", **as_row(ev))
            yield ev

    try:
        while step < total:
            if pause is not None and pause.is_set():
                yield from settle(0)  # show the last step before waiting
            while pause is not None and pause.is_set() and not (stop is not None and stop.is_set()):
                time.sleep(0.05)
            monitor_now = cfg.monitor_every and step % cfg.monitor_every == 0
            halt = ranks.halt(stop is not None and stop.is_set())
            if pending and (halt or monitor_now):
                yield from settle(0)
            if halt:
                checkpoint_now()
                log.write("stopped", step=step)
                yield RunStopped(step=step, path=last_ckpt or "", run_dir=str(run_dir))
                return
            if monitor_now and ranks.main:
                yield probe()
            t0 = time.perf_counter()
            epoch, data_step = position(plan, step)
            try:
                idx, batch = ranks.share(*loader.get(data_step))
            except Exception:  # the loader died: the steps done are at a clean boundary, keep them
                yield from settle(0)
                checkpoint_now()
                raise
            batch = batch.to(device, non_blocking=True)
            views = pipeline_for(size := int(sizes[step]))(
                batch, step_generator(cfg.seed, step, ranks.rank)
            )
            if use_cl:
                views = [v.contiguous(memory_format=torch.channels_last) for v in views]
            t_data = time.perf_counter() - t0
            lr = float(lr_sched[step])
            for group in opt.param_groups:
                group["lr"] = lr
            oom = False
            try:
                loss, extra = optimise(method, opt, scaler, views, idx, amp, device, ranks.sync)
            except RuntimeError as exc:
                if not is_out_of_memory(exc) or ranks.size > 1:
                    raise
                oom = True
            if oom:  # outside the except block: the failed step's tensors are released
                batch = views = None
                yield from settle(0)
                yield apply(out_of_memory_plan(plan, step, opt, device))
                continue
            method.on_step_end(step, total)
            pending.append((step, epoch, ranks.loss(loss.detach()), extra, lr, t0, t_data))
            yield from settle(lag)
            step += 1
            clock.step_done(step, size)
            if (data_step + 1) % spe == 0 or step == total or step % cfg.checkpoint_every == 0:
                yield from settle(0)
            if (data_step + 1) % spe == 0 or step == total:
                mean = float(np.mean(epoch_losses)) if epoch_losses else float("nan")
                log.write("epoch", epoch=epoch, step=step - 1, mean_loss=mean)
                yield EpochEnded(epoch=epoch, step=step - 1, mean_loss=mean)
                epoch_losses = []
            if step % cfg.checkpoint_every == 0 and step < total:
                last_ckpt = save(f"step_{step:07d}")
                yield CheckpointSaved(step=step, path=last_ckpt)
            rest = sizes_of_rest(plan, cfg)
            new_total = clock.revised_total(step, total, rest) if step < total else None
            if clock.active:
                new_total = ranks.agree(False, new_total)[1]
            if new_total is not None:
                yield from settle(0)
                yield apply(revise(plan, step, "time budget", total_steps=new_total))
        if cfg.monitor_every and ranks.main:
            ev = probe()
            final_score = getattr(ev, selection.get("signal", "view_top1"))
            yield ev
        last_ckpt = save("final")
        path, advice = recommendation(selection, final_score, last_ckpt, selection.get("best", ""))
        log.write("finished", step=step, recommended=path, advice=advice, seconds=clock.spent())
        yield RunFinished(
            step=step, path=last_ckpt, final_loss=last_loss, recommended=path, advice=advice
        )
    except Exception as exc:  # any failure: reported with the last good checkpoint, then raised
        with contextlib.suppress(Exception):
            log.write("failed", step=step, message=str(exc))
        yield RunFailed(
            step=step, message=f"{type(exc).__name__}: {exc}", last_checkpoint=last_ckpt
        )
        raise
    finally:
        loader.close()
        log.close()
