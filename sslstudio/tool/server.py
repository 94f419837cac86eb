"""A small JSON HTTP server over one bundle: the tool's API and Label Studio's ML backend.

Routes: GET /health; POST /embed, /query, /classify (raw image body, or JSON with a base64
``image``); POST /setup, /predict and /webhook (Label Studio's ML backend). Standard library only
(ThreadingHTTPServer): the tool adds no web framework to what users install.

Safety, because a port on a laptop is reachable by every web page its browser opens:
- binds 127.0.0.1 unless told otherwise, and refuses any other address without a token, which
  every request must then carry (``Authorization: Token T``, ``Bearer T``, or Basic auth with T
  as the password, which is what Label Studio's "basic auth" setting sends);
- the Host header must name this port and localhost, an IP literal, the bound name or an
  ``--allow-host`` name: DNS rebinding (evil.example resolving to 127.0.0.1) gets 403;
- POSTs must be image/*, application/octet-stream or application/json, none of which a page
  can send cross-origin without a CORS preflight, and OPTIONS is never answered with CORS;
- bodies over the limit get 413, non-images 415, errors a JSON body; nothing is ever served
  from a path.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import json
import math
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np

from sslstudio.imaging.decode import DecodeError
from sslstudio.tool.inference import Model, NotAnImage, ToolError
from sslstudio.tool.labelstudio import (
    LabelStudioConfig,
    TaskImageError,
    check_label_config,
    predict,
    project_config,
    read_data_uri,
)
from sslstudio.tool.search import NeighbourIndex

LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain"})
MAX_K = 1000
BODY_TIMEOUT_S = 3.0  # a body that stops arriving for this long is a 408
_DRAIN_LIMIT = 64 << 20  # read and drop up to this much of a refused body, so the 413 arrives


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8765
    token: str | None = None
    max_body_bytes: int = 20 << 20
    allow_hosts: tuple[str, ...] = ()
    workers: int = 2  # model runs at once; more only queue for the same cores
    quiet: bool = False
    label_studio: LabelStudioConfig = field(default_factory=LabelStudioConfig)


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def is_loopback(host: str) -> bool:
    if host.lower() in LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class ToolServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, model: Model, index: NeighbourIndex, cfg: ServerConfig) -> None:
        if not is_loopback(cfg.host) and not cfg.token:
            raise ToolError(
                f"refusing to listen on {cfg.host} without --token: anyone who can reach it "
                "could use the model; pass --token (or bind 127.0.0.1)"
            )
        self.model, self.index, self.cfg = model, index, cfg
        self.busy = threading.BoundedSemaphore(max(1, cfg.workers))
        if ":" in cfg.host:
            import socket

            self.address_family = socket.AF_INET6
        super().__init__((cfg.host, cfg.port), _Handler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def log(self, text: str) -> None:
        if not self.cfg.quiet:
            print(f"sslstudio-tool serve: {text}", file=sys.stderr, flush=True)


def host_allowed(header: str | None, bound: str, port: int, extra: tuple[str, ...]) -> bool:
    """DNS-rebinding defence: only names that cannot be an attacker's domain pass."""
    if not header:
        return False
    name, _, port_text = header.rpartition(":") if not header.endswith("]") else (header, "", "")
    if not name:  # no port given
        name, port_text = header, ""
    name = name.strip("[]").lower().rstrip(".")
    if name in {e.lower() for e in extra}:  # behind a reverse proxy the port may be anything
        return True
    if (int(port_text) if port_text.isdigit() else 80) != port:
        return False
    try:
        ipaddress.ip_address(name)  # an IP literal: a page can only be from that origin itself
        return True
    except ValueError:
        return name in LOCAL_NAMES or name == bound.lower()


class _Handler(BaseHTTPRequestHandler):
    server: ToolServer
    server_version = "sslstudio-tool"
    sys_version = ""
    timeout = 30  # a client that stops sending mid-request loses its thread after this

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_OPTIONS(self) -> None:  # no CORS: a browser page on another origin stays out
        self._dispatch("OPTIONS")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base's name)
        self.server.log(f"{self.address_string()} {format % args}")

    def _dispatch(self, method: str) -> None:
        body: dict[str, Any]
        self._consumed = False
        try:
            self._check_request()
            route = ROUTES.get(urlsplit(self.path).path)
            if route is None:
                raise HttpError(404, f"no such endpoint: {urlsplit(self.path).path}")
            want, fn = route
            if method != want:
                raise HttpError(405, f"{urlsplit(self.path).path} takes {want}, not {method}")
            status, body = 200, fn(self)
        except HttpError as e:
            status, body = e.status, {"error": e.message}
        except Exception as e:  # the client gets a JSON 500, the operator the traceback
            self.server.log(f"internal error on {self.path}:\n{traceback.format_exc()}")
            status, body = 500, {"error": f"internal error ({type(e).__name__})"}
        if not self._consumed:  # an unread body would reset the connection before our answer
            self._drain(_int(self.headers.get("Content-Length")))
        self._send(status, body)

    def _check_request(self) -> None:
        cfg = self.server.cfg
        host = self.headers.get("Host")
        if not host_allowed(host, cfg.host, self.server.port, cfg.allow_hosts):
            raise HttpError(
                403,
                f"Host {host!r} is not this server (DNS rebinding defence); "
                "use --allow-host NAME for a name that should reach it",
            )
        if cfg.token and not _token_ok(self.headers.get("Authorization", ""), cfg.token):
            raise HttpError(401, "missing or wrong token: send 'Authorization: Token <token>'")

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        if status == 401:
            self.send_header("WWW-Authenticate", 'Basic realm="sslstudio-tool"')
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    # ---- bodies -------------------------------------------------------------------------
    def _body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raise HttpError(411, "send a Content-Length (chunked bodies are not accepted)")
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError as e:
            raise HttpError(411, "a Content-Length header is required") from e
        limit = self.server.cfg.max_body_bytes
        if length < 0 or length > limit:
            self._drain(length)
            raise HttpError(413, f"body of {length} bytes is over the {limit}-byte limit")
        self._consumed = True
        return self._read_exactly(length)

    def _read_exactly(self, length: int) -> bytes:
        """The body, read under a short timeout: a Content-Length larger than what is sent
        is a 408 within seconds, not a thread held for the connection's whole timeout."""
        parts, left = [], length
        self.connection.settimeout(BODY_TIMEOUT_S)
        try:
            while left > 0:
                chunk = self.rfile.read1(min(left, 1 << 16))
                if not chunk:
                    raise HttpError(400, f"the body ended {left} bytes before its Content-Length")
                parts.append(chunk)
                left -= len(chunk)
        except TimeoutError as e:
            self.close_connection = True
            raise HttpError(
                408, f"the body stopped {left} bytes before its Content-Length (timed out)"
            ) from e
        finally:
            self.connection.settimeout(self.timeout)
        return b"".join(parts)

    def _drain(self, length: int) -> None:
        self.close_connection = True
        self._consumed = True
        left = min(max(length, 0), _DRAIN_LIMIT)
        self.connection.settimeout(BODY_TIMEOUT_S)  # a body shorter than announced: give up
        try:
            while left > 0 and (chunk := self.rfile.read1(min(left, 1 << 16))):
                left -= len(chunk)
        except (TimeoutError, ConnectionError):
            pass  # the connection closes after the answer anyway
        finally:
            self.connection.settimeout(self.timeout)

    def _media(self) -> str:
        return self.headers.get("Content-Type", "").split(";")[0].strip().lower()

    def _json(self) -> Any:
        if self._media() != "application/json":
            raise HttpError(415, "send application/json")
        try:
            return json.loads(self._body())
        except (UnicodeDecodeError, ValueError, RecursionError) as e:
            raise HttpError(400, f"body is not valid JSON ({e})") from e

    def _image_request(self) -> tuple[bytes, dict[str, Any]]:
        """(image bytes, JSON options): a raw image body, or JSON with ``image`` in base64."""
        media = self._media()
        if media.startswith("image/") or media == "application/octet-stream":
            return self._body(), {}
        if media != "application/json":
            raise HttpError(415, 'send the image as image/* or as JSON {"image": base64}')
        doc = self._json()
        image = doc.get("image") if isinstance(doc, dict) else None
        if not isinstance(image, str):
            raise HttpError(400, 'JSON body needs "image": base64 or a data: URI')
        try:
            if image.startswith("data:"):
                return read_data_uri(image, self.server.cfg.max_body_bytes), doc
            return base64.b64decode(image, validate=True), doc
        except (TaskImageError, binascii.Error, ValueError) as e:
            raise HttpError(400, f"image is not valid base64 ({e})") from e

    def _features(self, data: bytes) -> np.ndarray:
        """(1, D) normalised features of one uploaded image."""
        model = self.server.model
        try:
            with self.server.busy:
                return model.embed_pixels(model.pixels_from_bytes(data)[None])
        except NotAnImage as e:
            raise HttpError(415, str(e)) from e
        except DecodeError as e:
            raise HttpError(400, f"image does not decode: {e.reason}") from e


def _whole(value: Any, name: str) -> int:
    """A JSON or query-string whole number; 2.5, true, 1e999 and "abc" are a 400."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        return int(value)
    raise HttpError(400, f"{name} must be an integer, got {str(value)[:40]!r}")


def _int(text: str | None) -> int:
    try:
        return max(0, int(text or 0))
    except ValueError:
        return 0


def _token_ok(header: str, token: str) -> bool:
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "basic":
        try:
            value = base64.b64decode(value, validate=True).decode("utf-8").partition(":")[2]
        except (binascii.Error, ValueError):
            return False
    elif scheme.lower() not in ("token", "bearer"):
        return False
    return hmac.compare_digest(value.encode("utf-8"), token.encode("utf-8"))


def _health(h: _Handler) -> dict[str, Any]:
    b = h.server.model.bundle
    return {
        "status": "UP",
        "model_class": "sslstudio-tool",
        "model_version": b.model_version,
        "embedding_dim": b.dim,
        "items": b.count,
        "classes": list(b.classifier.classes) if b.classifier else [],
        "classifier": b.classifier is not None,
        "approximate_search": h.server.index.approximate,
    }


def _embed(h: _Handler) -> dict[str, Any]:
    data, _ = h._image_request()
    f = h._features(data)[0]
    return {
        "model_version": h.server.model.bundle.model_version,
        "dim": len(f),
        "embedding": [float(v) for v in f],
    }


def _query(h: _Handler) -> dict[str, Any]:
    data, doc = h._image_request()
    k_text = doc.get("k", parse_qs(urlsplit(h.path).query).get("k", ["10"])[0])
    k = _whole(k_text, "k")
    if not 1 <= k <= MAX_K:
        raise HttpError(400, f"k must be in [1, {MAX_K}], got {k}")
    scores, idx = h.server.index.search(h._features(data), k)
    paths = h.server.model.bundle.paths
    hits = [
        {"rank": r + 1, "index": int(i), "path": paths[i], "score": float(s)}
        for r, (s, i) in enumerate(zip(scores[0], idx[0]))
    ]
    return {"model_version": h.server.model.bundle.model_version, "k": k, "neighbours": hits}


def _probabilities(h: _Handler, data: bytes) -> tuple[tuple[str, ...], np.ndarray]:
    try:
        clf = h.server.model.classifier
    except ToolError as e:
        raise HttpError(409, str(e)) from e
    return clf.classes, clf.probabilities(h._features(data))[0]


def _classify(h: _Handler) -> dict[str, Any]:
    data, _ = h._image_request()
    classes, p = _probabilities(h, data)
    best = int(np.argmax(p))
    return {
        "model_version": h.server.model.bundle.model_version,
        "label": classes[best],
        "confidence": float(p[best]),
        "probabilities": {c: float(v) for c, v in zip(classes, p)},
    }


def _setup(h: _Handler) -> dict[str, Any]:
    """Label Studio's connect call: refuse (Label Studio then shows the backend as failing)
    when the project's config would hide every prediction; hostname/access_token there are
    not trusted (labelstudio.py)."""
    doc = h._json()
    doc = doc if isinstance(doc, dict) else {}
    warnings = _check_project(h, doc.get("project"), doc.get("schema"))
    return {"model_version": h.server.model.bundle.model_version, "warnings": warnings}


def _check_project(h: _Handler, uid: Any, sent: Any) -> list[str]:
    cfg, log = h.server.cfg.label_studio, h.server.log
    config = project_config(uid, sent, cfg, log)
    clf = h.server.model.bundle.classifier
    if config is None or clf is None:
        return []
    check = check_label_config(config, cfg, clf.classes)
    for line in check.warnings:
        log(f"project {uid}: warning: {line}")
    if check.errors:
        for line in check.errors:
            log(f"project {uid}: refused: {line}")
        raise HttpError(400, "; ".join(check.errors))
    return check.warnings


def _predict(h: _Handler) -> dict[str, Any]:
    doc = h._json()
    tasks = doc.get("tasks") if isinstance(doc, dict) else None
    if not isinstance(tasks, list):
        raise HttpError(400, 'body needs "tasks": [...]')
    if h.server.model.bundle.classifier is None:
        raise HttpError(409, "this bundle has no classifier: nothing to pre-annotate")

    def classify(data: bytes) -> tuple[str, float]:
        classes, p = _probabilities(h, data)
        best = int(np.argmax(p))
        return classes[best], float(p[best])

    version = h.server.model.bundle.model_version
    results, errors = predict(tasks, h.server.cfg.label_studio, classify, version, h.server.log)
    return {"results": results, "model_version": version, "errors": errors}


def _webhook(h: _Handler) -> dict[str, Any]:
    """Label Studio adds ``<backend>/webhook`` for every project event (and "Start training"):
    the tool does not train, so it reads the event and says so."""
    doc = h._json()
    action = doc.get("action") if isinstance(doc, dict) else None
    return {"status": "ignored", "action": action, "reason": "sslstudio-tool does not train"}


ROUTES: dict[str, tuple[str, Callable[[_Handler], dict[str, Any]]]] = {
    "/health": ("GET", _health),
    "/embed": ("POST", _embed),
    "/query": ("POST", _query),
    "/classify": ("POST", _classify),
    "/setup": ("POST", _setup),
    "/predict": ("POST", _predict),
    "/webhook": ("POST", _webhook),
}
