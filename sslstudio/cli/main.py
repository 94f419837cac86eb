"""Command line: ``sslstudio [FOLDER]`` opens the window; subcommands run headless.

    sslstudio train FOLDER [--method simclr --backbone resnet18 --image-size 32 ...]
    sslstudio train --resume RUN
    sslstudio embed RUN FOLDER -o features.npz
    sslstudio eval RUN --train DIR [--test DIR]
    sslstudio scan FOLDER
    sslstudio methods
    sslstudio export RUN -o DIR [--zip] [--absolute-paths] [--family-formats] [--checkpoint NAME]

Errors from below print as one line and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from pathlib import Path

from sslstudio.cli.train import EXIT_INTERRUPTED, cmd_train, config_from_args  # noqa: F401 (re-exported)
from sslstudio.tool.arguments import whole_number as _whole

COMMANDS = (
    "train",
    "embed",
    "eval",
    "scan",
    "methods",
    "gui",
    "neighbors",
    "neighbours",
    "classify",
    "export",
)


def _die(msg: str, code: int = 2) -> int:
    print(f"sslstudio: error: {msg}", file=sys.stderr)
    return code


def _number(lo: float, hi: float):
    """An argparse type: a finite number in [lo, hi]."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not (math.isfinite(value) and lo <= value <= hi):
            raise argparse.ArgumentTypeError(f"must be from {lo:g} to {hi:g}, got {text}")
        return value

    return parse


def _group_rule(text: str) -> str:
    if text in ("", "folder"):
        return text
    try:
        re.compile(text)
    except re.error as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a valid regex ({exc})") from None
    return text


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sslstudio", description="Self-supervised pretraining on your own images."
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    _add_gui(sub)
    _add_train(sub)
    _add_embed(sub)
    _add_eval(sub)
    _add_scan(sub)
    _add_methods(sub)
    _add_neighbors(sub)
    _add_classify(sub)
    _add_export(sub)
    return p


def _add_gui(sub) -> None:
    g = sub.add_parser("gui", help="open the window (default when no command is given)")
    g.add_argument(
        "folder", nargs="?", help="folder of images (default: the bundled sample images)"
    )
    g.add_argument(
        "--selftest", action="store_true", help="build the window offscreen, train 2 steps, exit 0"
    )


def _add_train(sub) -> None:
    t = sub.add_parser("train", help="train a model on a folder of images")
    t.add_argument("folder", nargs="?", help="folder of images (searched recursively)")
    t.add_argument(
        "--resume", metavar="RUN", help="continue the run in this folder from its last checkpoint"
    )
    t.add_argument(
        "--config", metavar="JSON", help="start from a saved config.json; flags override it"
    )
    t.add_argument("--method")
    t.add_argument("--backbone")
    t.add_argument("--image-size", type=int)
    t.add_argument(
        "--progressive-from",
        type=int,
        metavar="PX",
        help="progressive resizing: train the first steps at PX pixels, growing to --image-size (0 "
        "= off)",
    )
    t.add_argument("--batch-size", type=int)
    t.add_argument("--epochs", type=int)
    t.add_argument("--max-steps", type=int)
    t.add_argument(
        "--preset",
        choices=("natural", "histopathology", "microscopy"),
        help="augmentation preset (default: recognised from a sample of the images)",
    )
    t.add_argument("--optimizer", choices=("sgd", "lars", "adamw"))
    t.add_argument("--lr", type=float, help="learning rate for a batch of 256")
    t.add_argument("--weight-decay", type=float)
    t.add_argument("--warmup-epochs", type=float, help="linear learning-rate warm-up, in epochs")
    t.add_argument("--weights", help="local weights file to start from, or 'imagenet'")
    t.add_argument("--small-stem", choices=("auto", "on", "off"))
    _add_tiling(t)
    t.add_argument(
        "--check-folder",
        metavar="FOLDER",
        help="labelled images from other slides (one subfolder per class, named as the training "
        "folder's), never trained on: each probe says whether the features beat random init on "
        "them, and the run recommends the checkpoint that does best there",
    )
    t.add_argument("--seed", type=int)
    t.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"))
    t.add_argument("--threads", type=int)
    t.add_argument("--checkpoint-every", type=int)
    t.add_argument("--monitor-every", type=int)
    t.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a method option, e.g. temperature=0.2",
    )
    t.add_argument(
        "--out", help="run folder (default: a new folder under the user's runs directory)"
    )
    t.add_argument(
        "--budget",
        metavar="TIME",
        help="plan the whole run to finish within TIME (e.g. 10m, 1h, 1h30m, overnight): method, "
        "size, "
        "batch and schedules from measured rules; flags you give are kept",
    )
    t.add_argument(
        "--distributed",
        action="store_true",
        help="one process of many under torchrun (DDP-style; rank 0 writes the run)",
    )
    t.add_argument(
        "--plan-only", action="store_true", help="with --budget: print the plan and exit"
    )
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument(
        "--events-json",
        action="store_true",
        help="print every event as one JSON line on stdout (rank 0): how the window follows a "
        "torchrun",
    )


def _add_tiling(t) -> None:
    """How whole-slide images become tiles (the Data page's "Whole-slide images" card)."""
    t.add_argument(
        "--tile-px", type=int, help="whole-slide images: tile side in pixels (default 224)"
    )
    t.add_argument(
        "--tile-tissue",
        type=float,
        metavar="SHARE",
        help="whole-slide images: keep tiles at least this share tissue (default 0.5)",
    )
    t.add_argument(
        "--tile-mpp",
        type=float,
        help="whole-slide images: tile resolution in µm per pixel (default 0.5, about 20x; 0 = "
        "full)",
    )


def _add_embed(sub) -> None:
    e = sub.add_parser("embed", help="write backbone features of a folder")
    e.add_argument("run")
    e.add_argument("folder")
    e.add_argument("-o", "--output", required=True, help=".npz file (features, paths, labels)")


def _add_eval(sub) -> None:
    v = sub.add_parser(
        "eval", help="weighted kNN top-1 of a run beside the same network at random init"
    )
    v.add_argument("run")
    v.add_argument("--train", required=True, help="labelled folder used as kNN memory")
    v.add_argument(
        "--test", help="labelled folder used as queries (default: leave-one-out on --train)"
    )
    v.add_argument("-k", type=_whole(1), default=200)
    # below ~0.01 exp(sim / t) overflows float32 and every score ties
    v.add_argument("--temperature", type=_number(0.01, 100.0), default=0.1)
    v.add_argument("--json", help="also write the result here")


def _add_scan(sub) -> None:
    s = sub.add_parser("scan", help="list usable images and skipped files with reasons")
    s.add_argument("folder")
    s.add_argument(
        "--quick", action="store_true", help="headers only: faster, misses truncated files"
    )


def _add_methods(sub) -> None:
    sub.add_parser("methods", help="list the self-supervised methods")


def _add_neighbors(sub) -> None:
    n = sub.add_parser(
        "neighbors",
        aliases=["neighbours"],
        help="nearest images of a query image; or the folder's outliers / near-duplicates",
    )
    n.add_argument("run")
    n.add_argument("image", nargs="?", help="query image: one of the folder's or any other file")
    n.add_argument("-k", type=_whole(1), default=10)
    n.add_argument("--folder", help="search this folder (default: the run's training folder)")
    n.add_argument("--checkpoint", help="checkpoint folder or name (default: the latest good one)")
    n.add_argument(
        "--group",
        default="",
        type=_group_rule,
        metavar="RULE",
        help="leave out the query's group: 'folder' (parent folder) or a regex on the file name",
    )
    n.add_argument(
        "--outliers",
        type=_whole(1),
        metavar="N",
        help="list the N images least like their neighbours",
    )
    n.add_argument(
        "--duplicates",
        type=_number(-1.0, 1.0),
        metavar="SIM",
        help="list pairs at least this similar (e.g. 0.97)",
    )
    n.add_argument("--approximate", choices=("auto", "on", "off"), default="auto")
    n.add_argument("--json", help="also write the answer here")


def _add_classify(sub) -> None:
    c = sub.add_parser("classify", help="train a classifier on a few labels, predict every image")
    c.add_argument("run")
    c.add_argument("-o", "--output", required=True, help="predictions CSV")
    c.add_argument("--labels", help="CSV of path,label (default: the labels saved from the window)")
    c.add_argument(
        "--from-subfolders", action="store_true", help="labels from the folder's class subfolders"
    )
    c.add_argument("--kind", choices=("linear", "knn"), default="linear")
    c.add_argument("--folder", help="classify this folder (default: the run's training folder)")
    c.add_argument("--checkpoint", help="checkpoint folder or name (default: the latest good one)")


def _add_export(sub) -> None:
    x = sub.add_parser(
        "export", help="write a bundle (ONNX model, weights, index) other programs can use"
    )
    x.add_argument("run")
    x.add_argument(
        "-o", "--output", required=True, metavar="DIR", help="bundle folder (DIR.zip with --zip)"
    )
    x.add_argument("--zip", action="store_true", help="one .zip file instead of a folder")
    x.add_argument(
        "--absolute-paths",
        action="store_true",
        help="store the indexed folder's absolute path (file names may identify people)",
    )
    x.add_argument(
        "--family-formats",
        action="store_true",
        help="also write the weights as a torchvision/timm state dict where the network has one "
        "(a second copy; model.onnx and backbone.safetensors share one)",
    )
    x.add_argument(
        "--checkpoint",
        default="latest",
        help="checkpoint folder or name (default: the latest good one)",
    )
    x.add_argument("--folder", help="index this folder (default: the run's training folder)")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help")):
        argv = ["gui", *argv]
    args = build_parser().parse_args(argv)
    from sslstudio.errors import SSLStudioError

    try:
        if args.command == "gui":
            from sslstudio.gui.app import run_app

            return run_app(args.folder, selftest=args.selftest)
        return {
            "train": cmd_train,
            "embed": cmd_embed,
            "eval": cmd_eval,
            "scan": cmd_scan,
            "methods": cmd_methods,
            "neighbors": cmd_neighbors,
            "neighbours": cmd_neighbors,
            "classify": cmd_classify,
            "export": cmd_export,
        }[args.command](args)
    except SSLStudioError as exc:
        return _die(str(exc), 1)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def cmd_embed(args: argparse.Namespace) -> int:
    from sslstudio.core.explore.embed import embed_folder, load_method

    method, cfg, ck = load_method(args.run)
    emb = embed_folder(method, args.folder, cfg.image_size)
    out = Path(args.output)
    if out.suffix != ".npz":
        out = out.with_suffix(".npz")
    emb.save(out)
    print(
        f"{emb.features.shape[0]} images x {emb.features.shape[1]} features from {ck.name} -> {out}"
    )
    if emb.skipped:
        print(f"{len(emb.skipped)} file(s) skipped", file=sys.stderr)
    return 0


def cmd_neighbors(args: argparse.Namespace) -> int:
    from sslstudio.cli.explore import neighbors

    return neighbors(args)


def cmd_classify(args: argparse.Namespace) -> int:
    from sslstudio.cli.explore import classify

    return classify(args)


def cmd_eval(args: argparse.Namespace) -> int:
    import json

    from sslstudio.core.explore.embed import knn_eval, load_method, random_init_method

    method, cfg, ck = load_method(args.run)
    device = next(method.parameters()).device
    trained = knn_eval(
        method, args.train, args.test, cfg.image_size, k=args.k, temperature=args.temperature
    )
    random = knn_eval(
        random_init_method(cfg).to(device),
        args.train,
        args.test,
        cfg.image_size,
        k=args.k,
        temperature=args.temperature,
    )
    mode = f"k={args.k}, τ={args.temperature}" if args.test else "leave-one-out, k<=10"
    print(f"weighted kNN top-1 ({mode}), {cfg.backbone} {cfg.method} at {cfg.image_size} px")
    print(f"  trained ({ck.name}):  {trained:.4f}")
    print(f"  random init:        {random:.4f}")
    print(f"  difference:         {trained - random:+.4f}")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"trained": trained, "random_init": random, "checkpoint": str(ck)}, indent=2)
        )
    return 0


def cmd_scan(args: argparse.Namespace) -> int:
    from sslstudio.core.data.indexstore import open_index
    from sslstudio.core.data.scan import require_usable
    from sslstudio.paths import cache_dir

    index = open_index(args.folder, cache_dir(), verify=not args.quick, rescan=True)
    print(index.summary())
    for f in index.skipped:
        print(f"  skipped {f.path}: {f.reason}")
    require_usable(index)  # none usable: the reason as the error line, exit 1
    return 0


def cmd_methods(args: argparse.Namespace) -> int:
    import textwrap

    from sslstudio.core.methods import METHODS, method_optim

    for name, cls in sorted(METHODS.items()):
        print(f"{name}  ({cls.paper})")
        print(textwrap.fill(cls.summary, width=90, initial_indent="    ", subsequent_indent="    "))
        o = method_optim(name)
        print(
            f"    defaults here: {o.optimizer}, lr {o.lr:g} per 256 images, weight decay "
            f"{o.weight_decay:g}"
        )
        if cls.paper_recipe:
            print(
                textwrap.fill(
                    f"at scale the paper uses: {cls.paper_recipe}",
                    width=90,
                    initial_indent="    ",
                    subsequent_indent="      ",
                )
            )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from sslstudio.core.export.bundle import describe_bundle, export_bundle, read_manifest

    shown = {"stage": ""}

    def progress(stage: str, done: int, total: int) -> None:
        if stage != shown["stage"]:  # one line per stage: a log stays readable, a tty too
            shown["stage"] = stage
            print(f"{stage}...", file=sys.stderr)

    out = export_bundle(
        args.run,
        args.output,
        checkpoint=args.checkpoint,
        zip=args.zip,
        absolute_paths=args.absolute_paths,
        family_formats=args.family_formats,
        folder=args.folder,
        progress=progress,
    )
    print(f"bundle: {out}")
    for line in describe_bundle(read_manifest(out)):
        print(f"  {line}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
