"""Label a few images, classify the rest: a linear probe or weighted kNN on frozen features.

Both work on L2-normalised features (the geometry of the neighbour browser). The linear probe
is multinomial logistic regression fitted by L-BFGS with class-balanced weights and a small
L2 penalty — with five labels per class the balance matters more than the penalty. Accuracy
is estimated by stratified cross-validation on the labels the user gave; with fewer than two
labels in some class there is nothing to hold out and no estimate is shown.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from sslstudio.core.maths.knn import knn_votes
from sslstudio.errors import SSLStudioError

KINDS = ("linear", "knn")


@dataclass
class LabelSet:
    """Class names and the images the user assigned to them (by path relative to the folder)."""

    classes: list[str] = field(default_factory=list)
    assigned: dict[str, str] = field(default_factory=dict)

    def add_class(self, name: str) -> None:
        name = name.strip()
        if not name:
            raise ValueError("a class needs a name")
        if name not in self.classes:
            self.classes.append(name)

    def remove_class(self, name: str) -> None:
        self.classes = [c for c in self.classes if c != name]
        self.assigned = {p: c for p, c in self.assigned.items() if c != name}

    def assign(self, paths: list[str], name: str | None) -> None:
        """Label ``paths`` as ``name`` (None removes their labels)."""
        if name is not None:
            self.add_class(name)
        for p in paths:
            if name is None:
                self.assigned.pop(p, None)
            else:
                self.assigned[p] = name

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(self.classes, 0)
        for c in self.assigned.values():
            out[c] = out.get(c, 0) + 1
        return out

    def rows(self, paths: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, y)``: positions in ``paths`` that carry a label, and class indices."""
        where = {p: i for i, p in enumerate(paths)}
        pairs = [
            (where[p], self.classes.index(c))
            for p, c in self.assigned.items()
            if p in where and c in self.classes
        ]
        pairs.sort()
        if not pairs:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        r, y = zip(*pairs)
        return np.asarray(r, np.int64), np.asarray(y, np.int64)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".tmp-{path.name}")
        data = {"format": 1, "classes": self.classes, "assigned": self.assigned}
        tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> LabelSet:
        if not path.exists():
            return cls()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(list(data["classes"]), {str(k): str(v) for k, v in data["assigned"].items()})
        except (ValueError, KeyError, TypeError) as exc:
            raise SSLStudioError(f"{path} is not a labels file SSL Studio wrote: {exc}") from exc

    @classmethod
    def from_subfolders(cls, paths: list[str], labels: np.ndarray | None, classes: list[str]):
        if labels is None or not classes:
            raise SSLStudioError("the folder has no class subfolders to take labels from")
        out = cls(list(classes))
        out.assigned = {p: classes[int(y)] for p, y in zip(paths, labels) if y >= 0}
        return out

    @classmethod
    def from_csv(cls, path: Path, paths: list[str]) -> tuple[LabelSet, list[str]]:
        """Labels from a CSV with columns ``path,label`` (a header row is optional).

        Paths may be relative to the folder or end with one of its relative paths. Returns the
        labels and the CSV paths that matched no image.
        """
        known = set(paths)
        by_tail = {}
        for p in paths:
            by_tail.setdefault(Path(p).name, []).append(p)
        out, unmatched = cls(), []
        with open(path, newline="", encoding="utf-8-sig") as fh:
            for row in csv.reader(fh):
                if len(row) < 2 or not row[0].strip():
                    continue
                p, label = row[0].strip().replace("\\", "/"), row[1].strip()
                if p.lower() == "path" and label.lower() in ("label", "class"):
                    continue
                match = p if p in known else None
                if match is None:
                    tails = [c for c in by_tail.get(Path(p).name, []) if p.endswith(c)]
                    match = tails[0] if len(tails) == 1 else None
                if match is None or not label:
                    unmatched.append(p)
                    continue
                out.assign([match], label)
        return out, unmatched


@dataclass
class Classifier:
    kind: str
    classes: list[str]
    weight: np.ndarray | None = None  # linear: (C, D)
    bias: np.ndarray | None = None  # linear: (C,)
    memory: np.ndarray | None = None  # knn: (M, D) unit rows
    memory_y: np.ndarray | None = None
    k: int = 20
    temperature: float = 0.1

    def probabilities(self, unit: np.ndarray, batch: int = 65_536) -> np.ndarray:
        """``(N, C)`` class probabilities for L2-normalised features."""
        out = np.empty((len(unit), len(self.classes)), np.float32)
        for s in range(0, len(unit), batch):
            x = torch.from_numpy(np.ascontiguousarray(unit[s : s + batch], np.float32))
            if self.kind == "linear":
                logits = x @ torch.from_numpy(self.weight).T + torch.from_numpy(self.bias)
                out[s : s + batch] = torch.softmax(logits, dim=1).numpy()
            else:
                votes = knn_votes(
                    torch.from_numpy(self.memory),
                    torch.from_numpy(self.memory_y),
                    x,
                    len(self.classes),
                    k=self.k,
                    temperature=self.temperature,
                )
                out[s : s + batch] = (votes / votes.sum(1, keepdim=True)).numpy()
        return out

    def save(self, folder: Path, *, cv_accuracy: float | None, labelled: int) -> None:
        """``classifier.safetensors`` + ``classifier.json`` (docs/bundle-format.md); linear only."""
        if self.kind != "linear":
            raise SSLStudioError("only the linear probe is saved for export (kNN needs its memory)")
        from safetensors.numpy import save_file

        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / ".tmp-classifier.safetensors"
        save_file(
            {"weight": self.weight.astype(np.float32), "bias": self.bias.astype(np.float32)},
            str(tmp),
        )
        os.replace(tmp, folder / "classifier.safetensors")
        meta = {
            "kind": "linear",
            "classes": self.classes,
            "cv_accuracy": cv_accuracy,
            "labelled": labelled,
            "input": "l2-normalised features",
        }
        tmp = folder / ".tmp-classifier.json"
        tmp.write_text(json.dumps(meta, indent=1), encoding="utf-8")
        os.replace(tmp, folder / "classifier.json")


def fit(
    kind: str,
    unit: np.ndarray,
    y: np.ndarray,
    classes: list[str],
    *,
    weight_decay: float = 1e-4,
    iterations: int = 200,
) -> Classifier:
    """Fit on labelled unit features ``(n, D)`` with class indices ``y`` ``(n,)``."""
    if kind not in KINDS:
        raise ValueError(f"classifier kind must be one of {KINDS}, got {kind!r}")
    present = np.unique(y)
    if len(present) < 2:
        raise SSLStudioError("label images of at least two classes to train a classifier")
    if kind == "knn":
        return Classifier(
            "knn",
            list(classes),
            memory=np.ascontiguousarray(unit, np.float32),
            memory_y=y.astype(np.int64),
        )
    x = torch.from_numpy(np.ascontiguousarray(unit, np.float32))
    t = torch.from_numpy(y.astype(np.int64))
    c = len(classes)
    counts = torch.bincount(t, minlength=c).float()
    cw = torch.where(
        counts > 0, counts.sum() / (counts.clamp(min=1) * len(present)), torch.zeros(c)
    )
    w = torch.zeros(c, x.shape[1], requires_grad=True)
    b = torch.zeros(c, requires_grad=True)
    opt = torch.optim.LBFGS(
        [w, b], lr=1, max_iter=iterations, history_size=20, line_search_fn="strong_wolfe"
    )
    scale = 10.0  # unit features give small logits: a fixed gain keeps the penalty meaningful

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(scale * x @ w.T + b, t, weight=cw) + weight_decay * (w**2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    bias = b.detach().clone()
    bias[counts == 0] = -1e4  # a class with no labels is never predicted
    return Classifier(
        "linear", list(classes), weight=(scale * w.detach()).numpy(), bias=bias.numpy()
    )


def cross_validate(
    kind: str, unit: np.ndarray, y: np.ndarray, classes: list[str], folds: int = 5, seed: int = 0
) -> float | None:
    """Stratified k-fold accuracy, or None when some labelled class has a single example."""
    present, counts = np.unique(y, return_counts=True)
    if len(present) < 2 or counts.min() < 2:
        return None
    folds = int(min(folds, counts.min()))
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(y), np.int64)
    for cls in present:
        members = rng.permutation(np.nonzero(y == cls)[0])
        fold_of[members] = np.arange(len(members)) % folds
    correct = 0
    for f in range(folds):
        train, test = fold_of != f, fold_of == f
        model = fit(kind, unit[train], y[train], classes)
        pred = model.probabilities(unit[test]).argmax(1)
        correct += int((pred == y[test]).sum())
    return correct / len(y)


@dataclass
class Predictions:
    probs: np.ndarray  # (N, C)
    classes: list[str]

    @property
    def label(self) -> np.ndarray:
        return self.probs.argmax(1)

    @property
    def confidence(self) -> np.ndarray:
        return self.probs.max(1)

    def margin(self) -> np.ndarray:
        """Top-1 minus top-2 probability: small = the classifier hesitates."""
        if self.probs.shape[1] < 2:
            return np.ones(len(self.probs), np.float32)
        top2 = -np.partition(-self.probs, 1, axis=1)[:, :2]
        return top2[:, 0] - top2[:, 1]

    def suggest(self, exclude: np.ndarray, count: int = 20) -> np.ndarray:
        """Rows to label next: the least certain among those not labelled yet."""
        order = np.argsort(self.margin(), kind="stable")
        skip = np.zeros(len(self.probs), bool)
        skip[exclude] = True
        return order[~skip[order]][:count]

    def write_csv(
        self, path: Path, paths: list[str], labelled: dict[str, str] | None = None
    ) -> None:
        tmp = Path(path).with_name(f".tmp-{Path(path).name}")
        labelled = labelled or {}
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(
                ["path", "label", "confidence", "user_label", *[f"p_{c}" for c in self.classes]]
            )
            for i, p in enumerate(paths):
                w.writerow(
                    [
                        p,
                        self.classes[self.label[i]],
                        f"{self.confidence[i]:.4f}",
                        labelled.get(p, ""),
                        *[f"{v:.4f}" for v in self.probs[i]],
                    ]
                )
        os.replace(tmp, path)
