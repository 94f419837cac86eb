"""``sslstudio neighbors`` and ``sslstudio classify``: the Explore page without a window."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from sslstudio.errors import SSLStudioError


def _progress(stage: str, done: int, total: int | None) -> None:
    if sys.stderr.isatty() and total:
        print(f"\r{stage}: {done}/{total}", end="" if done < total else "\n", file=sys.stderr)


def _embeddings(args: argparse.Namespace):
    from sslstudio.core.explore.embedstore import run_embeddings

    return run_embeddings(args.run, args.folder, checkpoint=args.checkpoint, progress=_progress)


def neighbors(args: argparse.Namespace) -> int:
    from sslstudio.core.explore import neighbours as nb

    if args.image is None and args.outliers is None and args.duplicates is None:
        raise SSLStudioError("give a query image, --outliers N or --duplicates SIM")
    emb = _embeddings(args)
    approximate = {"auto": None, "on": True, "off": False}[args.approximate]
    index = nb.open_index(emb, approximate=approximate)
    answer: dict = {"checkpoint": emb.checkpoint, "root": emb.root, "index": index.kind}
    if args.image is not None:
        query, row = _query_vector(args, emb)
        groups = nb.group_ids(emb.paths, args.group)
        qg = None
        if groups is not None:
            qg = np.array([groups[row] if row >= 0 else -1])
        sims, ids = index.search(
            query[None], args.k, groups=groups, query_groups=qg, rows=np.array([row])
        )
        hits = [(emb.paths[i], float(s)) for s, i in zip(sims[0], ids[0]) if i >= 0]
        print(f"{len(hits)} nearest of {args.image} among {len(emb)} images ({index.kind} search):")
        for rank, (path, sim) in enumerate(hits, 1):
            print(f"{rank:>4}  {sim:7.4f}  {path}")
        answer["query"] = str(args.image)
        answer["neighbours"] = [{"path": p, "similarity": s} for p, s in hits]
    if args.outliers is not None:
        scores = nb.outlier_scores(index, k=min(10, max(1, len(emb) - 1)))
        order = np.argsort(scores, kind="stable")[: args.outliers]
        print(f"{len(order)} images least like their 10 nearest neighbours (mean similarity):")
        for i in order:
            print(f"  {scores[i]:7.4f}  {emb.paths[i]}")
        answer["outliers"] = [
            {"path": emb.paths[i], "mean_similarity": float(scores[i])} for i in order
        ]
    if args.duplicates is not None:
        pairs = nb.near_duplicates(index, threshold=args.duplicates)
        print(f"{len(pairs)} pair(s) with similarity >= {args.duplicates}:")
        for a, b, s in pairs:
            print(f"  {s:7.4f}  {emb.paths[a]}  {emb.paths[b]}")
        answer["duplicates"] = [
            {"a": emb.paths[a], "b": emb.paths[b], "similarity": s} for a, b, s in pairs
        ]
    if args.json:
        Path(args.json).write_text(json.dumps(answer, indent=1), encoding="utf-8")
    return 0


def _query_vector(args: argparse.Namespace, emb) -> tuple[np.ndarray, int]:
    """The query's unit feature and its row in the folder (-1 for an outside image)."""
    image = Path(args.image)
    try:
        rel = image.resolve().relative_to(Path(emb.root).resolve()).as_posix()
    except ValueError:
        rel = args.image.replace("\\", "/")
    if rel in emb.paths:
        row = emb.paths.index(rel)
        return emb.unit()[row], row
    if not image.is_file():
        raise SSLStudioError(f"{image} is neither an image of {emb.root} nor a file")
    from sslstudio.core.explore.embed import query_vector

    return query_vector(emb.checkpoint, image), -1


def classify(args: argparse.Namespace) -> int:
    from sslstudio.core.explore import classify as cl

    emb = _embeddings(args)
    if args.from_subfolders:
        labels = cl.LabelSet.from_subfolders(emb.paths, emb.labels, emb.classes)
    elif args.labels:
        labels, unmatched = cl.LabelSet.from_csv(Path(args.labels), emb.paths)
        if unmatched:
            print(
                f"{len(unmatched)} row(s) of {args.labels} match no image, e.g. {unmatched[0]}",
                file=sys.stderr,
            )
    else:
        labels = cl.LabelSet.load(Path(args.run) / "explore" / "labels.json")
    rows, y = labels.rows(emb.paths)
    if len(rows) == 0:
        raise SSLStudioError(
            "no labelled images: give --labels CSV, --from-subfolders, "
            "or label some in the window's Explore page"
        )
    unit = emb.unit()
    cv = cl.cross_validate(args.kind, unit[rows], y, labels.classes)
    model = cl.fit(args.kind, unit[rows], y, labels.classes)
    pred = cl.Predictions(model.probabilities(unit), labels.classes)
    pred.write_csv(Path(args.output), emb.paths, labels.assigned)
    counts = np.bincount(pred.label, minlength=len(labels.classes))
    print(
        f"{args.kind} classifier from {len(rows)} labels in {len(labels.classes)} classes; "
        "cross-validated accuracy: "
        f"{'n/a (need 2 labels per class)' if cv is None else f'{cv:.3f}'}"
    )
    for name, n in zip(labels.classes, counts):
        print(f"  {name}: {n} predicted")
    print(f"predictions for {len(emb)} images -> {args.output}")
    if args.kind == "linear":
        model.save(Path(args.run) / "explore", cv_accuracy=cv, labelled=len(rows))
    return 0
