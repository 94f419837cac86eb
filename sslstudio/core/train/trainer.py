"""The training engine: one generator that reads top to bottom and speaks in events.

``for event in train(cfg): ...`` — the CLI prints the events, the GUI forwards them through
one signal, tests collect them. Everything a step needs is derived from (seed, step): the data
order from (seed, epoch), each view's random parameters from (seed, step). A checkpoint
therefore only needs weights, optimizer state and the step to resume *exactly*.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from sslstudio.config import RunConfig
from sslstudio.core.data.cache import CacheCancelled
from sslstudio.core.data.loader import BatchLoader
from sslstudio.core.data.scan import ScanCancelled
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
from sslstudio.core.methods import build_method, check_run_config
from sslstudio.core.train import checkpoints as ckpt
from sslstudio.core.train.check import check_notices, load_check, with_check
from sslstudio.core.train.check import hits as check_hits
from sslstudio.core.train.deadline import Deadline
from sslstudio.core.train.device import describe, pick_device
from sslstudio.core.train.monitor import run_probe
from sslstudio.core.train.optimizers import build_optimizer
from sslstudio.core.train.plan import Plan, lr_schedule, make_plan, position, resumed_plan, revise
from sslstudio.core.train.prepare import prepare, skipped_notices
from sslstudio.core.train.ranks import Alone, NullLog, for_this_process
from sslstudio.core.train.resizing import size_schedule, sizes_of_rest
from sslstudio.core.train.runs import (
    MetricsLog,
    RunLock,
    discard_unstarted,
    new_run_dir,
    write_run_config,
)
from sslstudio.core.train.step import (
    Pending,
    StepQueue,
    amp_dtype,
    is_out_of_memory,
    optimise,
    out_of_memory_plan,
    settle_lag,
)
from sslstudio.core.train.threads import chooser_for, threads_revised, use_threads
from sslstudio.core.train.verdict import keep_best, recommendation
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
    check_run_config(cfg)  # before a run folder exists
    ranks = for_this_process(cfg.method)
    created = not resume_from and not (cfg.out and Path(cfg.out).exists())
    if resume_from:
        run_dir, start, notices = ckpt.open_for_resume(Path(resume_from), cfg, clean=ranks.main)
    else:
        run_dir, start, notices = new_run_dir(cfg) if ranks.main else "", None, []
    run_dir = Path(ranks.run_dir(run_dir))  # under torchrun: rank 0's folder on every rank
    lock = RunLock(run_dir).acquire() if ranks.main else None
    try:
        yield from _train(cfg, run_dir, start, notices, stop, pause, ranks)
    finally:
        if lock is not None:
            lock.release()
            if not resume_from:  # a start that failed leaves --out as it found it
                discard_unstarted(run_dir, created)


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

    stop = stop or threading.Event()
    ranks.before_prepare()
    try:
        index, data = yield from prepare(cfg, stop)
        data = dataclasses.replace(data, input_norm=cfg.input_norm)  # views and probes alike
        check = None
        if cfg.check_folder:  # labelled images from other slides, asked at every probe
            side = int(data.array.shape[1])
            check = yield from load_check(
                cfg.check_folder, list(index.classes), data.labels(), side, stop, cfg.seed
            )
            check = dataclasses.replace(
                check, data=dataclasses.replace(check.data, input_norm=cfg.input_norm)
            )
    except (ScanCancelled, CacheCancelled):
        if ranks.main:  # stopped by the user, not failed: the run can be resumed
            write_run_config(run_dir, cfg)
        last = str(start.path) if start is not None else ""
        step0 = int(start.meta["step"]) if start is not None else 0
        yield RunStopped(step=step0, path=last, run_dir=str(run_dir))
        return
    ranks.after_prepare()
    notices += skipped_notices(index, data)
    if check is not None:
        notices += check_notices(check)
    run = _Run(cfg, run_dir, ranks, device, clock, index, data, start, notices, check)
    yield from run.begin(notices, stop, pause)
    try:
        run.save_init()
        while run.step < run.plan.total_steps:
            yield from run.wait_while_paused()
            monitor_now = cfg.monitor_every and run.step % cfg.monitor_every == 0
            halt = ranks.halt(stop.is_set())
            if run.queue.pending and (halt or monitor_now):
                yield from run.settle()
            if halt:
                yield run.stopped()
                return
            if monitor_now and ranks.main:
                yield run.probe()
            yield from run.train_step()
        yield from run.finish()
    except Exception as exc:  # any failure: reported with the last good checkpoint, then raised
        yield run.failed(exc)
        raise
    finally:
        run.close()


def _build_model(cfg, device: torch.device) -> tuple[torch.nn.Module, bool]:
    """The method on ``device`` (seeded), and whether it runs channels-last."""
    torch.manual_seed(cfg.seed)
    method = build_method(cfg).to(device)
    use_cl = cfg.channels_last and device.type == "cuda"
    if use_cl:
        method = method.to(memory_format=torch.channels_last)
    if cfg.compile and device.type == "cuda":
        # in place: the state-dict keys (and so checkpoints and export) stay those of the module
        method.backbone.compile()
    return method, use_cl


class _Run:
    """One run between its start and its end: the plan and the schedules that follow from it,
    the model and optimizer, the loader, the log, the best-checkpoint record (``selection``),
    and the steps queued on the device (``queue``)."""

    def __init__(
        self, cfg, run_dir: Path, ranks: Alone, device, clock, index, data, start, notices, check
    ):
        self.cfg, self.run_dir, self.ranks, self.device = cfg, run_dir, ranks, device
        self.check, self._as_read, self._init = check, False, None
        self.clock, self.index, self.data = clock, index, data
        n = len(data)
        self.method, self.use_cl = _build_model(cfg, device)
        if start is None:
            plan = saved = make_plan(cfg, n, multiple=ranks.size)
        else:
            same = start.meta.get("fingerprint") == index.fingerprint()
            plan, saved, notice = resumed_plan(start.meta["plan"], start.step, same, n)
            notices += [notice] if notice else []
        self._follow(plan)
        self.opt = build_optimizer(self.method, cfg.optim, float(self.lr_sched[0]))
        self.amp = amp_dtype(cfg, device)
        self.scaler = torch.amp.GradScaler("cuda") if self.amp == torch.float16 else None
        # per-image state is sized as saved, loaded, then rebuilt for the folder as it is now
        self.method.on_train_start(saved.num_images, plan.total_steps)
        self.step, self.selection = 0, {}  # the best checkpoint by the quality signal
        if start is not None:
            self.step, self.selection = ckpt.restore(start, self.method, self.opt, self.scaler)
            if saved is not plan:
                self.method.on_data_changed(n, self.step)
        ranks.adopt(self.method)
        if ranks.main:  # images decoded, model built: the run really starts
            write_run_config(run_dir, cfg)
        # rows past the checkpoint (a crash after it) are dropped: no gaps, no duplicates
        self.log = MetricsLog(run_dir / "metrics.jsonl", self.step) if ranks.main else NullLog()
        rows = np.random.default_rng(cfg.seed).permutation(n)[: min(cfg.probe_size, n)]
        self.probe_rows, self.labels = np.sort(rows), data.labels()
        self.last_ckpt = str(start.path) if start is not None else None
        self._pipelines: dict[int, ViewPipeline] = {}
        self.threads = chooser_for(cfg, device, ranks.size)  # a timed CPU run: fastest count now

    def _follow(self, plan: Plan) -> None:
        self.plan = plan
        self.lr_sched, self.sizes = lr_schedule(plan, self.cfg), size_schedule(plan, self.cfg)

    def begin(self, notices, stop: threading.Event, pause) -> Iterator[Event]:
        """Announce the run, then open the loader and the queue of unread steps."""
        plan, device = self.plan, describe(self.device)
        yield RunStarted(
            run_dir=str(self.run_dir),
            device=device,
            total_steps=plan.total_steps,
            steps_per_epoch=plan.steps_per_epoch,
            batch_size=plan.batch_size,
            start_step=self.step,
            num_images=len(self.data),
            lr_schedule=tuple(float(x) for x in self.lr_sched),
            notices=tuple(notices),
        )
        total, row = plan.total_steps, plan.to_dict()
        try:
            self.log.write(
                "start", step=self.step, total_steps=total, device=device, plan=row, notices=notices
            )
        except BaseException:  # the first write fails on a full disk: before the loop's finally
            self.log.close()
            raise
        self.stop, self.pause = stop, pause
        self.loader = self._new_loader()
        self.queue = StepQueue(settle_lag(self.device), self.log)

    def save_init(self) -> None:
        """The step-0 weights the features are blended with (``init_blend``), once per run; a
        failure here (a full disk) is the run's failure, reported like any other."""
        if self.cfg.init_blend > 0 and self.step == 0 and self.ranks.main:
            self.save("init")

    def _new_loader(self) -> BatchLoader:
        bs, spe, cuda = self.plan.batch_size, self.plan.steps_per_epoch, self.device.type == "cuda"
        return BatchLoader(self.data, self.cfg.seed, bs, spe, pin=cuda)

    def pipeline_for(self, size: int) -> ViewPipeline:
        """The view pipeline at ``size`` (progressive resizing trains at a few sizes)."""
        if size not in self._pipelines:
            specs = self.method.view_specs(dataclasses.replace(self.cfg, image_size=size))
            self._pipelines[size] = ViewPipeline(specs, constraints=self.method.constraints)
        return self._pipelines[size]

    def views(self, batch: torch.Tensor, size: int) -> list[torch.Tensor]:
        """This step's augmented views of ``batch``, on the device, at ``size``."""
        batch = batch.to(self.device, non_blocking=True)
        rng = step_generator(self.cfg.seed, self.step, self.ranks.rank)
        views = self.pipeline_for(size)(batch, rng)
        if self.use_cl:
            views = [v.contiguous(memory_format=torch.channels_last) for v in views]
        return views

    def settle(self, keep: int = 0) -> Iterator[StepLogged]:
        """Read the losses of queued steps until ``keep`` are left unread."""
        yield from self.queue.settle(keep, self.plan, self.sizes, self.cfg.image_size)

    def wait_while_paused(self) -> Iterator[StepLogged]:
        """Hold here while the user pauses (a stop ends the pause)."""
        if self.pause is None or not self.pause.is_set():
            return
        yield from self.settle()  # show the last step before waiting
        while self.pause.is_set() and not self.stop.is_set():
            time.sleep(0.05)

    def train_step(self) -> Iterator[Event]:
        """Queue one step on the device, or halve the batch when it runs out of memory; then
        the epoch's end, a checkpoint and the deadline's revision, as due."""
        if self.threads is not None:
            use_threads(self.threads)
        t0, step = time.perf_counter(), self.step
        epoch, data_step = position(self.plan, step)
        try:
            idx, batch = self.ranks.share(*self.loader.get(data_step))
        except Exception:  # the loader died: the steps done are at a clean boundary, keep them
            yield from self.settle()
            self.checkpoint()
            raise
        views = self.views(batch, size := int(self.sizes[step]))
        t_data = time.perf_counter() - t0
        lr = float(self.lr_sched[step])
        for group in self.opt.param_groups:
            group["lr"] = lr
        oom = False
        try:
            how = (self.amp, self.device, self.ranks.sync)
            loss, extra = optimise(self.method, self.opt, self.scaler, views, idx, *how)
        except RuntimeError as exc:
            if not is_out_of_memory(exc) or self.ranks.size > 1:
                raise
            oom = True
        if oom:  # outside the except block: the failed step's tensors are released
            del batch, views
            yield from self.settle()
            yield self.apply(out_of_memory_plan(self.plan, step, self.opt, self.device))
            return
        self.method.on_step_end(step, self.plan.total_steps)
        if self.threads is not None and (why := self.threads.step_took(time.perf_counter() - t0)):
            yield threads_revised(self.log, step, why, self.plan, self.lr_sched)
        loss = self.ranks.loss(loss.detach())
        self.queue.pending.append(Pending(step, epoch, loss, extra, lr, t0, t_data))
        yield from self.settle(self.queue.lag)
        self.step += 1
        self.clock.step_done(self.step, size)
        yield from self.after_step(epoch, data_step)

    def after_step(self, epoch: int, data_step: int) -> Iterator[Event]:
        step, total, cfg = self.step, self.plan.total_steps, self.cfg
        epoch_end = (data_step + 1) % self.plan.steps_per_epoch == 0 or step == total
        if epoch_end or step % cfg.checkpoint_every == 0:
            yield from self.settle()
        if epoch_end:
            mean = self.queue.epoch_mean()
            ended = EpochEnded(epoch=epoch, step=step - 1, mean_loss=mean)
            self.log.write_event(ended)
            yield ended
        if step % cfg.checkpoint_every == 0 and step < total:
            self.last_ckpt = self.save(f"step_{step:07d}")
            yield CheckpointSaved(step=step, path=self.last_ckpt)
        rest = sizes_of_rest(self.plan, cfg)
        new_total = self.clock.revised_total(step, total, rest) if step < total else None
        if self.clock.active:
            new_total = self.ranks.agree(False, new_total)[1]
        if new_total is not None:
            yield from self.settle()
            yield self.apply(revise(self.plan, step, "time budget", total_steps=new_total))

    def apply(self, new: Plan) -> PlanRevised:
        """Train on by the revised plan ``new`` from this step (a new batch: a new loader)."""
        old = self.plan
        reload = (new.batch_size, new.steps_per_epoch) != (old.batch_size, old.steps_per_epoch)
        self._follow(new)
        if reload:
            self.loader.close()
            self.loader = self._new_loader()
        rev = new.revisions[-1]
        self.log.write("revision", step=self.step, **rev.to_dict())
        return PlanRevised(
            step=self.step,
            reason=rev.reason,
            batch_size=new.batch_size,
            total_steps=new.total_steps,
            peak_lr=new.peak_lr,
            lr_schedule=tuple(float(x) for x in self.lr_sched),
        )

    def save(self, name: str) -> str:
        if not self.ranks.main:  # rank 0 writes; the others know where
            return str(self.run_dir / "checkpoints" / name)
        t, step, plan = time.perf_counter(), self.step, self.plan
        meta = {
            "step": step,
            "samples_seen": step * plan.batch_size,
            "epoch": position(plan, step)[0],
            "plan": plan.to_dict(),
            "config": self.cfg.to_dict(),
            "fingerprint": self.index.fingerprint(),
            "run_dir": str(self.run_dir),
            "train_seconds": self.clock.spent(),
            "selection": self.selection,
        }
        state = {"optimizer": self.opt.state_dict(), "torch_rng": torch.get_rng_state()}
        if self.scaler is not None:
            state["scaler"] = self.scaler.state_dict()
        path = ckpt.save_checkpoint(self.run_dir, name, self.method.state_dict(), state, meta)
        ckpt.prune(self.run_dir)
        self.log.write_event(CheckpointSaved(step=step, path=str(path)))
        self.clock.note("save", time.perf_counter() - t)
        return str(path)

    def checkpoint(self) -> None:
        """Save the steps done so far, unless the newest checkpoint already holds them."""
        last = self.last_ckpt
        newest = int(ckpt.read_meta(Path(last))["step"]) if last and self.ranks.main else -1
        if self.step > 0 and newest != self.step:
            self.last_ckpt = self.save(f"step_{self.step:07d}")

    def probe(self) -> MonitorLogged:
        """The quality probe at this step; a new best by its signal is saved as ``best``."""
        t, step, cfg, sel = time.perf_counter(), self.step, self.cfg, self.selection
        where = (self.probe_rows, self.labels, cfg.image_size, self.device, step)
        ev = run_probe(
            self.method, self.data, *where, cfg.augment, cfg.seed, selection=sel, domain=cfg.preset
        )
        if self.check is not None:
            with self.as_features():  # the check is about the features the user gets
                got = check_hits(
                    self.method, self.check, self.data, self.labels, cfg.image_size, self.device
                )
            ev = with_check(ev, got, self.check.size, sel, cfg.seed)
        self.log.write_event(ev)
        self.clock.note("probe", time.perf_counter() - t)
        total, n = self.plan.total_steps, len(self.probe_rows)
        keep_best(sel, ev, step, total, lambda: self.save("best"), n)
        return ev

    @contextlib.contextmanager
    def as_features(self) -> Iterator[None]:
        """The model holds the weights features are read from (blended with the step-0 ones
        under init_blend) inside the block, its trained weights again after it."""
        if self.cfg.init_blend <= 0 or self._as_read:
            yield
            return
        trained = {k: v.detach().clone() for k, v in self.method.state_dict().items()}
        if self._init is None:  # read once: a check folder blends at every probe
            self._init, _, _ = ckpt.load_checkpoint(self.run_dir / "checkpoints" / "init")
        self.method.load_state_dict(ckpt.blend_with_init(trained, self._init, self.cfg.init_blend))
        self._as_read = True
        try:
            yield
        finally:
            self._as_read = False
            self.method.load_state_dict(trained)

    def stopped(self) -> RunStopped:
        self.checkpoint()
        ev = RunStopped(step=self.step, path=self.last_ckpt or "", run_dir=str(self.run_dir))
        self.log.write_event(ev)
        return ev

    def finish(self) -> Iterator[Event]:
        """The last probe, the final checkpoint and the one to use."""
        final_probe = None
        if self.cfg.monitor_every and self.ranks.main:
            with self.as_features():  # the last verdict is about the features the user gets
                final_probe = self.probe()
            yield final_probe
        self.last_ckpt = last = self.save("final")
        best, seconds = self.selection.get("best", ""), self.clock.spent()
        blended = self.cfg.init_blend > 0
        # a blended run's earlier probes measured the trained weights, unless a check folder
        # measured every probe on the features as read: then its steps are on one scale
        apart = blended and self.check is None
        path, advice = recommendation(self.selection, final_probe, last, best, apart)
        if blended:
            advice = (advice.rstrip(".") + ". " if advice else "") + ckpt.blend_note(
                self.cfg.init_blend
            )
        loss = self.queue.last_loss
        done = RunFinished(
            step=self.step, path=last, final_loss=loss, recommended=path, advice=advice
        )
        self.log.write_event(done, seconds=seconds)
        yield done

    def failed(self, exc: Exception) -> RunFailed:
        with contextlib.suppress(Exception):
            self.log.write("failed", step=self.step, message=str(exc))
        message = f"{type(exc).__name__}: {exc}"
        return RunFailed(step=self.step, message=message, last_checkpoint=self.last_ckpt)

    def close(self) -> None:
        self.loader.close()
        self.log.close()
