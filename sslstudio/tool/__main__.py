"""``sslstudio-tool``: use an exported bundle with numpy, pillow and onnxruntime only.

    sslstudio-tool info BUNDLE
    sslstudio-tool embed BUNDLE FOLDER -o X.npy         # + X.items.json (paths, skipped files)
    sslstudio-tool query BUNDLE IMAGE -k 10
    sslstudio-tool classify BUNDLE FOLDER -o predictions.csv [--label-studio tasks.json]
    sslstudio-tool serve BUNDLE [--host 127.0.0.1] [--port 8765] [--token T]
    sslstudio-tool view BUNDLE IMAGE

Errors print as one line and exit 1, never a traceback; a file that does not decode is named
on stderr and skipped.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

from sslstudio.imaging.decode import DecodeError
from sslstudio.tool.arguments import whole_number as _whole
from sslstudio.tool.bundle import Bundle, BundleError, load_bundle
from sslstudio.tool.inference import Model, ToolError, list_images, skipped_summary
from sslstudio.tool.search import NeighbourIndex

TOKEN_ENV = "SSLSTUDIO_TOOL_TOKEN"
_SHOW_SKIPPED = 20


def _megabytes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (math.isfinite(value) and 0 < value <= 1 << 20):
        raise argparse.ArgumentTypeError(f"must be a positive number of megabytes, got {text}")
    return value


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("bundle", help="bundle folder or .zip written by `sslstudio export`")
    common.add_argument(
        "--threads", type=_whole(0, 1024), default=0, help="onnxruntime threads (0: auto)"
    )
    common.add_argument(
        "--batch-size", type=_whole(1, 1 << 16), default=32, help="images per model run"
    )
    p = argparse.ArgumentParser(prog="sslstudio-tool", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("info", parents=[common], help="verify the bundle and describe it")
    e = sub.add_parser("embed", parents=[common], help="embed a folder of images")
    e.add_argument("input", help="an image folder (searched recursively) or one image")
    e.add_argument("-o", "--output", required=True, help="X.npy (paths go to X.items.json)")
    e.add_argument("--raw", action="store_true", help="keep features unnormalised")
    q = sub.add_parser("query", parents=[common], help="nearest bundled images to an image")
    q.add_argument("image")
    q.add_argument("-k", type=_whole(1), default=10)
    q.add_argument("--json", action="store_true", help="print JSON instead of a table")
    q.add_argument("--approximate", action="store_true", help="HNSW index (needs usearch)")
    c = sub.add_parser("classify", parents=[common], help="predict a class for each image")
    c.add_argument("input", help="an image folder (searched recursively) or one image")
    c.add_argument("-o", "--output", required=True, help="predictions CSV")
    c.add_argument("--label-studio", metavar="JSON", help="also write Label Studio tasks")
    c.add_argument(
        "--url-prefix",
        help="prefix of image URLs in the Label Studio tasks (default: "
        "/data/local-files/?d=<path of INPUT under --document-root>/)",
    )
    c.add_argument(
        "--document-root",
        help="Label Studio's LOCAL_FILES_DOCUMENT_ROOT (default: the folder above INPUT)",
    )
    _label_names(c)
    s = sub.add_parser("serve", parents=[common], help="HTTP API and Label Studio ML backend")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=_whole(0, 65535), default=8765, help="0: any free port")
    s.add_argument(
        "--token",
        default=os.environ.get(TOKEN_ENV),
        help=f"required from clients; needed to bind beyond localhost (or ${TOKEN_ENV})",
    )
    s.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="another Host name clients may use (e.g. behind a reverse proxy)",
    )
    s.add_argument("--max-body-mb", type=_megabytes, default=20.0)
    s.add_argument("--approximate", choices=["auto", "on", "off"], default="auto")
    s.add_argument("--label-studio-url", help="fetch task images from this Label Studio only")
    s.add_argument(
        "--label-studio-token",
        help="a Personal Access Token, or a legacy token (better: $LABEL_STUDIO_API_KEY, "
        "since command lines are visible to other users)",
    )
    _label_names(s)
    v = sub.add_parser("view", parents=[common], help="a window with an image's neighbours")
    v.add_argument("image")
    v.add_argument("-k", type=_whole(1), default=10)
    v.add_argument("--images-root", help="where the bundled images are (default: items.json root)")
    return p


def _label_names(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from-name", default="choice", help="the <Choices name=...> in Label Studio")
    p.add_argument("--to-name", default="image", help="the <Image name=...> in Label Studio")
    p.add_argument("--data-key", default="image", help="task data key holding the image")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        bundle = load_bundle(args.bundle)
        if args.command == "info":
            return _info(bundle)
        model = Model(bundle, threads=args.threads, batch_size=args.batch_size)
        return COMMANDS[args.command](model, args)
    except (BundleError, ToolError, ValueError, OSError) as e:
        print(f"sslstudio-tool: error: {e}", file=sys.stderr)
        return 1
    except DecodeError as e:  # the one image of query/view
        print(f"sslstudio-tool: error: {args.image}: {e.reason}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


def _info(bundle: Bundle) -> int:
    m = bundle.manifest
    clf = bundle.classifier
    print(f"bundle      {bundle.source} (verified)")
    print(f"model       {m.get('method')} / {m.get('backbone')}  version {bundle.model_version}")
    print(
        f"input       {bundle.input.size} px RGB, mean {bundle.input.mean}, std {bundle.input.std}"
    )
    print(f"embeddings  {bundle.count} x {bundle.dim}")
    print(f"classifier  {', '.join(clf.classes) if clf else 'none'}")
    return 0


def _embed(model: Model, args: argparse.Namespace) -> int:
    from sslstudio.tool.interchange import relative_paths, write_embeddings

    folders: list[tuple[str, str]] = []
    paths = list_images(args.input, folders)
    result = model.embed_files(paths, normalise=not args.raw)
    _report(args.input, paths, result.skipped, folders)
    root, rel = relative_paths(result.paths, args.input)
    items = write_embeddings(
        args.output,
        result.features,
        root,
        rel,
        skipped=result.skipped,
        normalised=not args.raw,
        model_version=model.bundle.model_version,
    )
    print(f"{len(rel)} embeddings ({model.bundle.dim}-d) -> {args.output}, paths -> {items}")
    return 0


def _classify(model: Model, args: argparse.Namespace) -> int:
    from sslstudio.tool.interchange import (
        label_studio_tasks,
        relative_paths,
        write_label_studio,
        write_predictions_csv,
    )

    clf = model.classifier  # before decoding anything: no classifier, no work
    folders: list[tuple[str, str]] = []
    paths = list_images(args.input, folders)
    result = model.embed_files(paths)
    _report(args.input, paths, result.skipped, folders)
    _, rel = relative_paths(result.paths, args.input)
    probs = clf.probabilities(result.features)
    write_predictions_csv(args.output, rel, probs, clf.classes)
    print(f"{len(rel)} predictions -> {args.output}")
    if args.label_studio:
        tasks = label_studio_tasks(
            rel,
            probs,
            clf.classes,
            model.bundle.model_version,
            from_name=args.from_name,
            to_name=args.to_name,
            data_key=args.data_key,
            url_prefix=_url_prefix(args),
        )
        write_label_studio(args.label_studio, tasks)
        print(f"{len(tasks)} Label Studio tasks with predictions -> {args.label_studio}")
    return 0


def _url_prefix(args: argparse.Namespace) -> str:
    """Local-files URLs name a file under the document root, and a storage cannot be the root
    itself: so the classified folder's own path under the root leads every link."""
    from sslstudio.tool.interchange import DEFAULT_URL_PREFIX

    if args.url_prefix is not None:
        return args.url_prefix
    folder = os.path.abspath(args.input)
    folder = folder if os.path.isdir(folder) else os.path.dirname(folder)
    root = os.path.abspath(args.document_root or os.path.dirname(folder))
    rel = os.path.relpath(folder, root)
    if rel == "." or rel.startswith(".."):
        raise ToolError(
            f"{folder} is not inside the document root {root}: Label Studio serves local files "
            "only from a sub-folder of LOCAL_FILES_DOCUMENT_ROOT (set --document-root)"
        )
    prefix = DEFAULT_URL_PREFIX + quote(Path(rel).as_posix()) + "/"
    print(f"image links: {prefix}<path> (Label Studio's LOCAL_FILES_DOCUMENT_ROOT={root})")
    return prefix


def _report(
    folder: str,
    paths: list[str],
    skipped: list[tuple[str, str]],
    folders: list[tuple[str, str]] = (),  # type: ignore[assignment]
) -> None:
    for path, reason in folders:  # as the studio's scan reports them: never silently fewer
        print(f"skipped folder {path}: {reason}", file=sys.stderr)
    for path, reason in skipped[:_SHOW_SKIPPED]:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    if len(skipped) > _SHOW_SKIPPED:
        print(f"... and {len(skipped) - _SHOW_SKIPPED} more", file=sys.stderr)
    if skipped:
        print(skipped_summary(skipped, len(paths)), file=sys.stderr)
    if len(skipped) == len(paths):
        detail = skipped_summary(skipped, len(paths)) if paths else "no files"
        raise ToolError(f"{folder} holds no readable images: {detail}")


def _query(model: Model, args: argparse.Namespace) -> int:
    from sslstudio.tool.viewer import neighbours

    index = NeighbourIndex(model.bundle.embeddings, approximate="on" if args.approximate else "off")
    _, hits = neighbours(model, index, args.image, args.k)
    if args.json:
        rows = [
            {"rank": r + 1, "index": i, "path": p, "score": s} for r, (i, p, s) in enumerate(hits)
        ]
        print(json.dumps({"query": args.image, "neighbours": rows}, indent=1))
        return 0
    print(f"{'rank':>4}  {'score':>7}  path")
    for r, (_, path, score) in enumerate(hits):
        print(f"{r + 1:>4}  {score:7.4f}  {path}")
    return 0


def _serve(model: Model, args: argparse.Namespace) -> int:
    from sslstudio.tool.labelstudio import LabelStudioConfig
    from sslstudio.tool.server import ServerConfig, ToolServer

    ls = LabelStudioConfig(
        url=args.label_studio_url,
        token=args.label_studio_token or LabelStudioConfig.token_from_env(),
        from_name=args.from_name,
        to_name=args.to_name,
        data_key=args.data_key,
    )
    cfg = ServerConfig(
        host=args.host,
        port=args.port,
        token=args.token,
        label_studio=ls,
        max_body_bytes=int(args.max_body_mb * (1 << 20)),
        allow_hosts=tuple(args.allow_host),
    )
    index = NeighbourIndex(model.bundle.embeddings, approximate=args.approximate)
    server = ToolServer(model, index, cfg)
    kind = "approximate (usearch)" if index.approximate else "exact"
    print(
        f"serving {model.bundle.source} on http://{args.host}:{server.port} "
        f"({model.bundle.count} items, {kind} search; Ctrl-C stops)",
        file=sys.stderr,
    )
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


def _view(model: Model, args: argparse.Namespace) -> int:
    from sslstudio.tool.viewer import show

    if not (args.images_root or model.bundle.items_root):
        print(
            "the bundle does not say where its images are (exported without "
            "--absolute-paths): pass --images-root DIR to see the neighbours",
            file=sys.stderr,
        )
    return show(
        model, NeighbourIndex(model.bundle.embeddings), args.image, args.k, args.images_root
    )


COMMANDS = {"embed": _embed, "query": _query, "classify": _classify, "serve": _serve, "view": _view}

if __name__ == "__main__":
    sys.exit(main())
