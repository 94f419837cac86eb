"""What the tool writes for other programs: embeddings, predictions, labelling-tool imports.

- ``X.npy`` (N, D) float32 beside ``X.items.json`` — the same pair as a bundle's
  embeddings.npy + items.json (root, POSIX paths relative to it), plus the skipped files.
- ``predictions.csv``: path, label, confidence, then ``p_<class>`` per class (sums to 1).
- Label Studio's task import JSON with ``predictions`` (choices), the same objects the server's
  ``/predict`` returns; docs/bundle-format.md says why this format.

Every file goes to a temp file in the same folder first, then ``os.replace``: a crash never
leaves half a file under the final name.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

DEFAULT_URL_PREFIX = "/data/local-files/?d="  # Label Studio's local-files storage


def relative_paths(paths: Sequence[str], root: str | os.PathLike[str]) -> tuple[str, list[str]]:
    """(absolute root, POSIX paths relative to it); a single file is relative to its folder."""
    base = Path(os.path.abspath(root))
    if base.is_file():
        base = base.parent
    # abspath, not resolve: a linked file inside the folder keeps its name there
    rel = [Path(os.path.abspath(p)).relative_to(base).as_posix() for p in paths]
    return str(base), rel


def items_path(npy: str | os.PathLike[str]) -> Path:
    """``out.npy`` -> ``out.items.json`` (the paths travel beside the matrix)."""
    p = Path(npy)
    stem = p.name[: -len(".npy")] if p.name.endswith(".npy") else p.name
    return p.with_name(stem + ".items.json")


def write_embeddings(
    npy: str | os.PathLike[str],
    features: np.ndarray,
    root: str,
    paths: Sequence[str],
    *,
    skipped: Sequence[tuple[str, str]] = (),
    normalised: bool = True,
    model_version: str = "",
) -> Path:
    """Write the matrix and its items file; return the items file's path."""
    if len(features) != len(paths):
        raise ValueError(f"{len(features)} rows for {len(paths)} paths")
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(features, dtype=np.float32), allow_pickle=False)
    _atomic_write(Path(npy), buf.getvalue())
    items = {
        "root": root,
        "paths": list(paths),
        "skipped": [{"path": p, "reason": r} for p, r in skipped],
        "normalised": normalised,
        "model_version": model_version,
        "embedding_dim": int(features.shape[1]) if features.ndim == 2 else 0,
    }
    out = items_path(npy)
    _atomic_write(out, json.dumps(items, indent=1).encode("utf-8"))
    return out


def write_predictions_csv(
    path: str | os.PathLike[str],
    paths: Sequence[str],
    probs: np.ndarray,
    classes: Sequence[str],
) -> None:
    """path,label,confidence,p_<class>...: label = argmax, confidence = its probability."""
    buf = io.StringIO(newline="")
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["path", "label", "confidence", *(f"p_{c}" for c in classes)])
    for p, row in zip(paths, probs):
        best = int(np.argmax(row))
        w.writerow([p, classes[best], f"{row[best]:.6f}", *(f"{v:.6f}" for v in row)])
    _atomic_write(Path(path), buf.getvalue().encode("utf-8"))


def choices_prediction(
    label: str, confidence: float, model_version: str, from_name: str, to_name: str
) -> dict[str, Any]:
    """One Label Studio prediction: a ``choices`` pre-annotation whose score is the confidence."""
    return {
        "model_version": model_version,
        "score": float(confidence),
        "result": [
            {
                "from_name": from_name,
                "to_name": to_name,
                "type": "choices",
                "value": {"choices": [label]},
            }
        ],
    }


def label_studio_tasks(
    paths: Sequence[str],
    probs: np.ndarray,
    classes: Sequence[str],
    model_version: str,
    *,
    from_name: str = "choice",
    to_name: str = "image",
    data_key: str = "image",
    url_prefix: str = DEFAULT_URL_PREFIX,
) -> list[dict[str, Any]]:
    """Import tasks: ``data[data_key]`` = url_prefix + the URL-quoted relative path."""
    tasks = []
    for p, row in zip(paths, probs):
        best = int(np.argmax(row))
        pred = choices_prediction(classes[best], row[best], model_version, from_name, to_name)
        tasks.append({"data": {data_key: url_prefix + quote(p)}, "predictions": [pred]})
    return tasks


def write_label_studio(path: str | os.PathLike[str], tasks: list[dict[str, Any]]) -> None:
    _atomic_write(Path(path), json.dumps(tasks, indent=1).encode("utf-8"))


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would hide the file from others
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it: put it straight back
    os.umask(mask)
    return mask
