"""What the installed core offers (methods, backbones, devices), loaded off the GUI thread.

Everything here needs torch, whose import takes seconds; the window is shown first and the
Method and Augment pages fill in when :class:`CatalogLoader` reports ``ready``. The catalog is
loaded once per process and holds plain data only.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import threading
import traceback
from dataclasses import dataclass, field
from typing import Any

import shiboken6
from PySide6.QtCore import QObject, QTimer, Signal

log = logging.getLogger(__name__)


def gui_threads() -> int:
    """Torch threads for runs started from the window: all cores but one, so the UI stays smooth."""
    return max(1, (os.cpu_count() or 2) - 1)


@dataclass(frozen=True)
class MethodInfo:
    """A method's class attributes as plain data (the class itself stays in the engine)."""

    name: str
    display: str  # as the paper writes it
    summary: str
    paper: str
    config_cls: type
    constraints: dict[str, float] = field(default_factory=dict)
    optim_defaults: dict[str, Any] = field(default_factory=dict)  # over OptimConfig's defaults
    paper_recipe: str = ""  # how the paper trains it at scale
    distributed: bool = False  # offered for a run over all GPUs (torchrun)

    @classmethod
    def of(cls, name: str, method: type) -> MethodInfo:
        return cls(
            name=name,
            display=method.display_name or name,
            summary=method.summary,
            paper=method.paper,
            config_cls=method.Config,
            constraints=dict(method.constraints),
            optim_defaults=dict(method.optim_defaults),
            paper_recipe=method.paper_recipe,
            distributed=method.distributed,
        )


def method_infos(methods: dict[str, type]) -> dict[str, MethodInfo]:
    """The registry as plain records, in a stable order (by display name)."""
    infos = [MethodInfo.of(name, cls) for name, cls in methods.items()]
    return {i.name: i for i in sorted(infos, key=lambda i: i.display.lower())}


@dataclass(frozen=True)
class Catalog:
    methods: dict[str, MethodInfo]
    backbones: dict[str, str]  # name -> one-line description
    cuda_name: str | None  # the GPU's name when CUDA works
    mps: bool
    notices: tuple[str, ...] = ()  # e.g. "CUDA failed to initialise"
    cuda_count: int = 0  # GPUs CUDA sees; more than one offers a torchrun run

    def describe_device(self, wish: str, threads: int | None = None) -> str:
        """Where a run with ``device=wish`` will train, in words (mirrors ``pick_device``)."""
        if wish in ("auto", "cuda") and self.cuda_name:
            return f"GPU: {self.cuda_name}"
        if wish in ("auto", "mps") and self.mps:
            return "Apple GPU (MPS)"
        n = threads or gui_threads()
        cpu = f"CPU, {n} thread{'s' if n != 1 else ''}"
        if wish in ("cuda", "mps"):
            return f"{cpu} (no {'CUDA GPU' if wish == 'cuda' else 'Apple GPU'} found)"
        return cpu


def load_catalog() -> Catalog:
    """Import the core (torch included) and describe it. Slow the first time: call off-thread."""
    from sslstudio.core.methods import METHODS
    from sslstudio.core.models.backbones import BACKBONES, backbone_info
    from sslstudio.core.train import trainer  # noqa: F401  (warms every module a run needs)
    from sslstudio.core.train.device import pick_device

    methods = method_infos(METHODS)
    backbones = {name: backbone_info(name).description for name in BACKBONES}
    device, notices = pick_device("auto")
    cuda_name = None
    if device.type == "cuda":
        import torch

        cuda_name = torch.cuda.get_device_name(device)
    mps = device.type == "mps"
    count = torch.cuda.device_count() if cuda_name else 0
    return Catalog(methods, backbones, cuda_name, mps, tuple(notices), count)


def _warm_lazy_imports() -> None:
    """Import now what torch imports lazily at a run's first optimizer (torch._dynamo, sympy, ...),
    and what NumPy imports lazily in the GUI's own calls (``numpy.ma``, behind ``np.unique``).

    Those imports hold the GIL for 100-300 ms stretches and stall the window; done once, in the
    loader's thread just after the catalog is ready (while the user is still choosing), they do
    not land in the first seconds of the first run (bench/gui_latency.py).
    """
    import numpy.ma  # noqa: F401  (np.unique imports it on first use: 85 ms on the GUI thread)
    import torch

    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)


_cached: Catalog | None = None
_lock = threading.Lock()
warmed = threading.Event()  # set once the lazy imports are done (benchmarks wait for it)
_preloading = threading.Event()


def preload() -> None:
    """Start importing the engine now, before the window is built.

    Importing torch holds the GIL in long stretches (``torch._C``'s initialisation alone is
    ~180 ms of C): started first, those stretches overlap the window's construction, when
    nothing is on screen to freeze, instead of stalling the first seconds after it appears
    (bench/gui_latency.py). :class:`CatalogLoader` then reports the result, or the error.
    """
    if _cached is None and not _preloading.is_set():
        _preloading.set()
        threading.Thread(target=_preload, name="sslstudio-engine", daemon=True).start()


def _preload() -> None:
    with contextlib.suppress(Exception):  # a failure is reported by the loader's own try
        _load_once()


def _load_once() -> Catalog:
    """The catalog, imported once per process (two windows, or a preload and a window)."""
    global _cached
    with _lock:
        if _cached is None:
            with _imports_without_collections():
                _cached = load_catalog()
        return _cached


@contextlib.contextmanager
def _imports_without_collections():
    """No garbage collection while torch's modules load, then those modules frozen out of it.

    Importing torch (and, at the first optimizer, torch._dynamo and sympy) creates millions of
    objects; each full collection meanwhile walks all of them with the GIL held: 40-110 ms
    pauses of the window (bench/gui_latency.py). The imported modules live as long as the
    process, so ``gc.freeze`` moves them out of the collector's sight for good.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


class CatalogLoader(QObject):
    """Emits ``ready(Catalog)`` in the GUI thread once the core is imported (at once if it was)."""

    ready = Signal(object)
    failed = Signal(str)

    def start(self) -> None:
        if _cached is not None:
            QTimer.singleShot(0, self._emit_cached)
            return
        # a plain daemon thread: an import cannot be cancelled, and must not hold up quitting
        threading.Thread(target=self._load, name="sslstudio-catalog", daemon=True).start()

    def _emit_cached(self) -> None:
        self.ready.emit(_cached)

    def _load(self) -> None:
        try:
            result: Any = _load_once()
            ok = True
        except Exception as exc:  # surfaced in the window; the app still opens
            log.error("loading the training engine failed:\n%s", traceback.format_exc())
            result, ok = f"{type(exc).__name__}: {exc}", False
        if shiboken6.isValid(self):
            with contextlib.suppress(
                RuntimeError
            ):  # the window closed between the check and the emit
                (self.ready if ok else self.failed).emit(result)
        if ok:
            with (
                contextlib.suppress(Exception),
                _imports_without_collections(),
            ):  # an optimisation only
                _warm_lazy_imports()
        warmed.set()
