"""What the Explore page looks at: one run's embeddings, its neighbour index, map, labels and
predictions; the slow parts (embedding, UMAP, classifier fitting) run off the GUI thread.

A view over core: every computation is a core function (embedstore, neighbours, projection,
classify); this object only holds the current answers and says when they change.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal, Slot

from sslstudio.gui.run.worker import ThreadJob, user_message

log = logging.getLogger(__name__)


MAX_PAIRS = 100  # near-duplicate pairs shown at once, most similar first


class ProgressWorker(QObject):
    """Calls ``fn(progress, cancel)`` off the GUI thread; progress throttled to ~20 Hz."""

    progress = Signal(str, int, int)  # stage, done, total (-1 unknown)
    done = Signal(object, object)  # tag, result
    failed = Signal(object, str)
    finished = Signal()

    def __init__(self, fn: Callable[..., Any], tag: object) -> None:
        super().__init__()
        self._fn, self.tag = fn, tag
        self.cancel = threading.Event()
        self._last = 0.0

    def _progress(self, stage: str, done: int, total: int | None) -> None:
        now = time.monotonic()
        if now - self._last >= 0.05 or (total is not None and done >= total):
            self._last = now
            self.progress.emit(stage, int(done), -1 if total is None else int(total))

    @Slot()
    def run(self) -> None:
        try:
            result = self._fn(self._progress, self.cancel)
        except Exception as exc:
            log.info("explore job %s failed:\n%s", self.tag, traceback.format_exc())
            self.failed.emit(self.tag, user_message(exc))
        else:
            self.done.emit(self.tag, result)
        finally:
            self.finished.emit()


class ExploreSession(QObject):
    """Signals: ``progress(stage, done, total)``, ``busy(str)`` ("" when idle), ``loaded()`` (a
    run's embeddings, index and PCA map are ready), ``mapChanged()``, ``labelsChanged()``,
    ``predictionsChanged()``, ``queryReady(vector, path)`` (an outside image embedded),
    ``listReady(kind, rows, scores)`` (outliers / duplicates), ``failed(message)``."""

    progress = Signal(str, int, int)
    busy = Signal(str)
    loaded = Signal()
    mapChanged = Signal()
    labelsChanged = Signal()
    predictionsChanged = Signal()
    queryReady = Signal(object, str)
    listReady = Signal(str, object, object)
    failed = Signal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.pairs_found = 0  # near-duplicate pairs at the last threshold (some maybe not shown)
        self.run: Path | None = None
        self.emb: Any = None
        self.index: Any = None
        self.coords: np.ndarray | None = None
        self.map_kind = "pca"
        self.clusters: np.ndarray | None = None
        self.labels: Any = None
        self.predictions: Any = None
        self.cv_accuracy: float | None = None
        self.classifier_kind = "linear"
        self._jobs: dict[str, tuple[ThreadJob, ProgressWorker]] = {}  # the current job per kind
        self._alive: set[ThreadJob] = set()  # with jobs replaced but still finishing
        self._callbacks: dict[tuple[str, int], Callable[[Any], None]] = {}
        self._generation = 0

    # -- background jobs ----------------------------------------------------------------------

    def _start(
        self, name: str, fn: Callable[..., Any], on_done: Callable[[Any], None], text: str
    ) -> None:
        self.cancel(name)
        self._generation += 1
        worker = ProgressWorker(fn, (name, self._generation))
        worker.progress.connect(self.progress)
        # slots of this GUI-thread object: queued, so the answers are handled on the GUI thread
        # (a lambda would run in the worker's thread)
        self._callbacks[worker.tag] = on_done
        worker.done.connect(self._on_done)
        worker.failed.connect(self._on_failed)
        job = ThreadJob(worker, f"sslstudio-explore-{name}", self)
        job.ended.connect(lambda n=name, j=job: self._on_ended(n, j))
        self._jobs[name] = (job, worker)
        self._alive.add(job)
        self.busy.emit(text)

    @Slot(object, object)
    def _on_done(self, tag: tuple[str, int], result: Any) -> None:
        on_done = self._callbacks.pop(tag, None)
        current = self._jobs.get(tag[0])
        if on_done is None or current is None or current[1].tag != tag:
            return  # an answer to a question replaced since
        on_done(result)

    @Slot(object, str)
    def _on_failed(self, tag: tuple[str, int], message: str) -> None:
        self._callbacks.pop(tag, None)
        current = self._jobs.get(tag[0])
        if current is not None and current[1].tag == tag and not current[1].cancel.is_set():
            self.failed.emit(message)

    def _on_ended(self, name: str, job: ThreadJob) -> None:
        self._alive.discard(job)
        if name in self._jobs and self._jobs[name][0] is job:
            del self._jobs[name]
        if not self._jobs:
            self.busy.emit("")

    def cancel(self, name: str | None = None) -> None:
        for key, (_, worker) in list(self._jobs.items()):
            if name is None or key == name:
                worker.cancel.set()

    def is_busy(self) -> bool:
        return bool(self._jobs)

    def shutdown(self, timeout_ms: int = 30_000) -> None:
        """Cancel and wait for every thread, replaced ones included (a QThread destroyed while
        it runs aborts the process)."""
        self.cancel()
        for job in list(self._alive):
            job.wait(timeout_ms)

    # -- opening a run ------------------------------------------------------------------------

    def open_run(self, run: str | Path, checkpoint: str | None = None) -> None:
        from sslstudio.core.explore.classify import LabelSet

        run = Path(run)
        self.cancel()
        self.run = run
        self.labels = LabelSet.load(run / "explore" / "labels.json")

        def work(progress, cancel):
            from sslstudio.core.explore import neighbours as nb
            from sslstudio.core.explore.embedstore import run_embeddings
            from sslstudio.core.explore.projection import pca_2d

            emb = run_embeddings(run, checkpoint=checkpoint, progress=progress, cancel=cancel)
            progress("index", 0, 1)
            index = nb.open_index(emb)
            coords = pca_2d(emb.unit())
            return emb, index, coords

        self._start("open", work, self._on_opened, f"Embedding the images of {run.name}…")

    def _on_opened(self, result: tuple[Any, Any, np.ndarray]) -> None:
        self.emb, self.index, self.coords = result
        self.map_kind = "pca"
        self.clusters = None
        self.predictions, self.cv_accuracy = None, None
        self.mapChanged.emit()  # first: views colouring the map need its points
        self.loaded.emit()
        if self.labels is not None and len(self.labels.rows(self.emb.paths)[0]):
            self.labelsChanged.emit()

    # -- neighbours ---------------------------------------------------------------------------

    def neighbours(self, vector: np.ndarray, k: int, row: int = -1, group_rule: str = ""):
        """``[(row, similarity)]`` best first (exact below the index threshold: milliseconds)."""
        from sslstudio.core.explore.neighbours import group_ids

        groups = group_ids(self.emb.paths, group_rule)
        qg = None if groups is None else np.array([groups[row] if row >= 0 else -1])
        extra = 1 if row >= 0 else 0  # the image itself comes back first: it is the query
        sims, ids = self.index.search(
            vector[None], k + extra, groups=groups, query_groups=qg, rows=np.array([row])
        )
        hits = [(int(i), float(s)) for s, i in zip(sims[0], ids[0]) if i >= 0 and i != row]
        return hits[:k]

    def closeness(self, vector: np.ndarray, sims: list[float], row: int = -1) -> np.ndarray:
        """For each of ``sims`` (similarities to ``vector``), the share of the folder (the
        query's own ``row`` left out) that is less similar: raw cosines of one folder crowd into
        0.97-0.99, these shares spread over 0-1."""
        every = self.emb.unit() @ np.asarray(vector, np.float32)
        if row >= 0:
            every = np.delete(every, row)
        every.sort()
        below = np.searchsorted(every, np.asarray(sims, np.float32), side="left")
        return below / max(len(every), 1)

    def query_file(self, path: str) -> None:
        """Embed an image from outside the folder; ``queryReady(vector, path)`` follows."""
        ck = self.emb.checkpoint

        def work(progress, cancel):
            from sslstudio.core.explore.embed import query_vector

            return query_vector(ck, path)

        self._start(
            "query", work, lambda v: self.queryReady.emit(v, path), f"Embedding {Path(path).name}…"
        )

    # -- map ----------------------------------------------------------------------------------

    def compute_umap(self) -> None:
        unit = self.emb.unit()

        def work(progress, cancel):
            from sslstudio.core.explore.projection import umap_2d

            return umap_2d(unit, cancel=cancel)

        def done(coords):
            if coords is not None:
                self.coords, self.map_kind = coords, "umap"
                self.mapChanged.emit()

        self._start("umap", work, done, "Computing the UMAP map…")

    def use_pca(self) -> None:
        from sslstudio.core.explore.projection import pca_2d

        self.coords, self.map_kind = pca_2d(self.emb.unit()), "pca"
        self.mapChanged.emit()

    def cluster(self, k: int) -> np.ndarray:
        from sslstudio.core.explore.projection import kmeans_labels

        self.clusters = kmeans_labels(self.emb.unit(), k)
        return self.clusters

    # -- labels and the classifier ------------------------------------------------------------

    def assign(self, rows: list[int], name: str | None) -> None:
        self.labels.assign([self.emb.paths[r] for r in rows], name)
        self._save_labels()

    def add_class(self, name: str) -> None:
        self.labels.add_class(name)
        self._save_labels()

    def remove_class(self, name: str) -> None:
        self.labels.remove_class(name)
        self._save_labels()

    def import_subfolders(self) -> None:
        from sslstudio.core.explore.classify import LabelSet

        self.labels = LabelSet.from_subfolders(self.emb.paths, self.emb.labels, self.emb.classes)
        self._save_labels()

    def import_csv(self, path: str) -> list[str]:
        from sslstudio.core.explore.classify import LabelSet

        imported, unmatched = LabelSet.from_csv(Path(path), self.emb.paths)
        for p, c in imported.assigned.items():
            self.labels.assign([p], c)
        self._save_labels()
        return unmatched

    def _save_labels(self) -> None:
        self.labels.save(self.run / "explore" / "labels.json")
        self.labelsChanged.emit()

    def labelled_rows(self) -> tuple[np.ndarray, np.ndarray]:
        return self.labels.rows(self.emb.paths)

    def train_classifier(self, kind: str) -> None:
        from sslstudio.core.explore import classify as cl

        rows, y = self.labelled_rows()
        unit, classes, run = self.emb.unit(), list(self.labels.classes), self.run
        self.classifier_kind = kind

        def work(progress, cancel):
            cv = cl.cross_validate(kind, unit[rows], y, classes)
            model = cl.fit(kind, unit[rows], y, classes)
            pred = cl.Predictions(model.probabilities(unit), classes)
            if kind == "linear":
                model.save(run / "explore", cv_accuracy=cv, labelled=len(rows))
            return pred, cv

        def done(result):
            self.predictions, self.cv_accuracy = result
            self.predictionsChanged.emit()

        self._start("classify", work, done, "Training the classifier…")

    def suggestions(self, count: int = 48) -> np.ndarray:
        rows, _ = self.labelled_rows()
        return self.predictions.suggest(rows, count)

    def export_predictions(self, path: str) -> None:
        self.predictions.write_csv(Path(path), self.emb.paths, self.labels.assigned)

    # -- lists --------------------------------------------------------------------------------

    def find_outliers(self, count: int = 100) -> None:
        index = self.index

        def work(progress, cancel):
            from sslstudio.core.explore.neighbours import outlier_scores

            scores = outlier_scores(index, k=min(10, max(1, len(index) - 1)))
            order = np.argsort(scores, kind="stable")[:count]
            return order, scores[order]

        self._start(
            "outliers", work, lambda r: self.listReady.emit("outliers", *r), "Finding outliers…"
        )

    def find_duplicates(self, threshold: float) -> None:
        index = self.index

        def work(progress, cancel):
            from sslstudio.core.explore.neighbours import near_duplicates

            found = near_duplicates(index, threshold=threshold)
            pairs = found[:MAX_PAIRS]  # the most similar: a list one can review
            rows = np.array([r for a, b, _ in pairs for r in (a, b)], np.int64)
            sims = np.array([s for _, _, s in pairs for _ in (0, 1)], np.float32)
            return rows, sims, len(found)

        def done(result: Any) -> None:
            rows, sims, self.pairs_found = result
            self.listReady.emit("duplicates", rows, sims)

        self._start(
            "duplicates",
            work,
            done,
            "Finding near-duplicates…",
        )
