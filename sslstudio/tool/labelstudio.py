"""Label Studio's ML-backend protocol: where a task's image comes from, and what comes back.

Label Studio POSTs ``{"tasks": [{"id": 1, "data": {"image": REF}}, ...]}`` to ``/predict``
and expects ``{"results": [prediction per task]}`` (see ``interchange.choices_prediction``).
REF is a ``data:`` URI, a path on the Label Studio server (``/data/upload/1/x.png``) or a full
URL. The tool reads data URIs itself and fetches the others only from the Label Studio base
URL given on its command line — never another host, never a local file, never a redirect —
so a task cannot make the server read ``/etc/passwd`` or probe the network behind it. The
``hostname`` and ``access_token`` that Label Studio sends in ``/setup`` are ignored for the same
reason: they come from whoever can reach the port.
"""

from __future__ import annotations

import base64
import binascii
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes, urljoin, urlsplit

from sslstudio.tool.interchange import choices_prediction

API_KEY_ENV = "LABEL_STUDIO_API_KEY"


class TaskImageError(Exception):
    """A task whose image the tool will not or cannot read; the message says which and why."""


@dataclass(frozen=True)
class LabelStudioConfig:
    url: str | None = None  # base URL of the Label Studio server, e.g. http://localhost:8080
    token: str | None = None  # its API key (legacy token), sent as "Authorization: Token ..."
    from_name: str = "choice"  # the <Choices name=...> of the labelling config
    to_name: str = "image"  # the <Image name=...> it annotates
    data_key: str = "image"  # task.data key holding the image (the Image tag's value=$...)
    max_image_bytes: int = 20 << 20
    timeout_s: float = 15.0

    def __post_init__(self) -> None:
        if self.url is not None:
            parts = urlsplit(self.url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"--label-studio-url must be an http(s) URL, got {self.url!r}")

    @staticmethod
    def token_from_env() -> str | None:
        return os.environ.get(API_KEY_ENV) or None


def task_image_ref(task: Any, data_key: str) -> str:
    """The image reference of one task: data[data_key], or the task's only string value."""
    data = task.get("data") if isinstance(task, dict) else None
    if not isinstance(data, dict):
        raise TaskImageError("task has no 'data' object")
    ref = data.get(data_key)
    if ref is None:
        strings = [v for v in data.values() if isinstance(v, str)]
        if len(strings) != 1:
            raise TaskImageError(f"task data has no {data_key!r} key (set --data-key)")
        ref = strings[0]
    if not isinstance(ref, str) or not ref:
        raise TaskImageError(f"task data[{data_key!r}] is not a string")
    return ref


def read_data_uri(uri: str, max_bytes: int) -> bytes:
    """``data:image/png;base64,...`` (or percent-encoded) -> bytes; image media types only."""
    head, sep, payload = uri.partition(",")
    if not sep or not head.lower().startswith("data:"):
        raise TaskImageError("malformed data: URI")
    params = head[5:].split(";")
    media = params[0].strip().lower()
    if media and not media.startswith("image/"):
        raise TaskImageError(f"data: URI holds {media}, not an image")
    if len(payload) > max_bytes * 4 // 3 + 4:
        raise TaskImageError(f"data: URI image is larger than {max_bytes} bytes")
    if "base64" in (p.strip().lower() for p in params[1:]):
        try:
            return base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError) as e:
            raise TaskImageError(f"data: URI is not valid base64 ({e})") from e
    return unquote_to_bytes(payload)


def resolve_url(ref: str, base: str | None) -> str:
    """The absolute URL to fetch for ``ref``, which must lie on the Label Studio server."""
    if base is None:
        raise TaskImageError(
            f"task image {ref[:80]!r} is a URL or path; start the server with "
            "--label-studio-url to fetch images from Label Studio (data: URIs work without)"
        )
    url = urljoin(base if base.endswith("/") else base + "/", ref)
    want, got = urlsplit(base), urlsplit(url)
    if (
        (got.scheme, got.hostname, _port(got)) != (want.scheme, want.hostname, _port(want))
        or got.username is not None
        or not got.path.startswith(want.path.rstrip("/") + "/")
    ):
        raise TaskImageError(
            f"task image {ref[:80]!r} is not on Label Studio at {base}; the tool fetches "
            "images only from there"
        )
    return url


def fetch_image(ref: str, cfg: LabelStudioConfig) -> bytes:
    """The bytes of a task's image (data: URI or Label Studio URL), size-capped."""
    if ref.startswith("data:"):
        return read_data_uri(ref, cfg.max_image_bytes)
    url = resolve_url(ref, cfg.url)
    request = urllib.request.Request(url, headers={"Accept": "image/*"})
    token = cfg.token or LabelStudioConfig.token_from_env()
    if token:
        request.add_header("Authorization", f"Token {token}")
    opener = urllib.request.build_opener(_NoRedirects)
    try:
        with opener.open(request, timeout=cfg.timeout_s) as response:
            data = response.read(cfg.max_image_bytes + 1)
    except urllib.error.HTTPError as e:
        raise TaskImageError(f"Label Studio answered {e.code} for {url}") from e
    except (urllib.error.URLError, OSError) as e:
        raise TaskImageError(f"cannot fetch {url} ({e})") from e
    if len(data) > cfg.max_image_bytes:
        raise TaskImageError(f"{url} is larger than {cfg.max_image_bytes} bytes")
    return data


def predict(
    tasks: Any,
    cfg: LabelStudioConfig,
    classify: Callable[[bytes], tuple[str, float]],
    model_version: str,
    log: Callable[[str], None],
) -> list[dict[str, Any]]:
    """One prediction per task, in order; a task that fails gets an empty result (logged)."""
    if not isinstance(tasks, list):
        raise TaskImageError("'tasks' must be a list")
    results = []
    for task in tasks:
        try:
            label, confidence = classify(fetch_image(task_image_ref(task, cfg.data_key), cfg))
            results.append(
                choices_prediction(label, confidence, model_version, cfg.from_name, cfg.to_name)
            )
        except Exception as e:  # one bad task must not cost the batch its other predictions
            task_id = task.get("id") if isinstance(task, dict) else None
            log(f"task {task_id}: no prediction ({e})")
            results.append({"model_version": model_version, "score": 0.0, "result": []})
    return results


def _port(parts: Any) -> int:
    return parts.port or (443 if parts.scheme == "https" else 80)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect could lead anywhere (and carry the API key along): refuse them all."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[override]
        raise urllib.error.HTTPError(
            req.full_url, code, f"redirect to {newurl} refused", headers, fp
        )
