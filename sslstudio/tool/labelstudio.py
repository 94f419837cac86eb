"""Label Studio's ML-backend protocol: where a task's image comes from, and what comes back.

Label Studio POSTs ``{"tasks": [{"id": 1, "data": {"image": REF}}, ...]}`` to ``/predict``
and expects ``{"results": [one entry per task]}`` (see ``interchange.choices_prediction``).
REF is a ``data:`` URI, a path on the Label Studio server (``/data/upload/1/x.png``) or a full
URL. The tool reads data URIs itself and fetches the others only from the Label Studio base
URL given on its command line — never another host, never a local file, never a redirect —
so a task cannot make the server read ``/etc/passwd`` or probe the network behind it. The
``hostname`` and ``access_token`` that Label Studio sends in ``/setup`` are ignored for the same
reason: they come from whoever can reach the port.

A task whose image cannot be read gets an empty *list*, not an empty prediction: Label Studio
1.23 (``ml/models.py``, ``_get_predictions_from_ml_backend``) stores one prediction per dict in
a task's entry, so ``[]`` stores nothing, while ``{"result": []}`` would be stored under the
model version and the task skipped by every later "Retrieve predictions" until deleted by hand.
"""

from __future__ import annotations

import base64
import binascii
import os
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import unquote_to_bytes, urljoin, urlsplit

from sslstudio.tool.interchange import choices_prediction
from sslstudio.tool.lsclient import LabelStudioClient, LabelStudioError

API_KEY_ENV = "LABEL_STUDIO_API_KEY"


class TaskImageError(Exception):
    """A task whose image the tool will not or cannot read; the message says which and why."""


@dataclass(frozen=True)
class LabelStudioConfig:
    url: str | None = None  # base URL of the Label Studio server, e.g. http://localhost:8080
    token: str | None = None  # a personal access token (or a legacy token); lsclient.py
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


@lru_cache(maxsize=8)
def client_for(cfg: LabelStudioConfig) -> LabelStudioClient:
    """One client per configuration, so an access token is refreshed once, not per task."""
    if cfg.url is None:
        raise TaskImageError("no --label-studio-url")
    return LabelStudioClient(cfg.url, cfg.token or cfg.token_from_env(), cfg.timeout_s)


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
    try:
        return client_for(cfg).get(url, cfg.max_image_bytes)
    except LabelStudioError as e:
        raise TaskImageError(str(e)) from e


def predict(
    tasks: Any,
    cfg: LabelStudioConfig,
    classify: Callable[[bytes], tuple[str, float]],
    model_version: str,
    log: Callable[[str], None],
) -> tuple[list[Any], list[dict[str, Any]]]:
    """(one entry per task, in order; the failures): a failed task's entry is ``[]``, which
    Label Studio stores nothing for, so the next "Retrieve predictions" asks again."""
    if not isinstance(tasks, list):
        raise TaskImageError("'tasks' must be a list")
    results: list[Any] = []
    errors: list[dict[str, Any]] = []
    for task in tasks:
        try:
            label, confidence = classify(fetch_image(task_image_ref(task, cfg.data_key), cfg))
            results.append(
                choices_prediction(label, confidence, model_version, cfg.from_name, cfg.to_name)
            )
        except Exception as e:  # one bad task must not cost the batch its other predictions
            task_id = task.get("id") if isinstance(task, dict) else None
            log(f"task {task_id}: no prediction, it will be asked for again ({e})")
            results.append([])
            errors.append({"task": task_id, "error": str(e)})
    return results, errors


def _port(parts: Any) -> int:
    return parts.port or (443 if parts.scheme == "https" else 80)


@dataclass
class ConfigCheck:
    """What the project's labelling config says about the tool's names and classes."""

    errors: list[str] = field(default_factory=list)  # predictions would not show: refuse
    warnings: list[str] = field(default_factory=list)  # they show, but some classes cannot


def project_id(uid: Any) -> int | None:
    """Label Studio sends the project as ``"<id>.<created timestamp>"``."""
    head = str(uid).split(".")[0] if uid is not None else ""
    return int(head) if head.isdigit() else None


def check_label_config(xml: str, cfg: LabelStudioConfig, classes: Sequence[str]) -> ConfigCheck:
    """Compare a labelling config with --from-name/--to-name/--data-key and the classes."""
    out = ConfigCheck()
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as e:
        out.warnings.append(f"the project's labelling config does not parse ({e}); not checked")
        return out
    choices = {c.get("name"): c for c in root.iter() if c.tag == "Choices"}
    images = {i.get("name"): i for i in root.iter() if i.tag == "Image"}
    tag = choices.get(cfg.from_name)
    if tag is None:
        have = ", ".join(f"--from-name {n}" for n in choices if n) or "no <Choices> tag"
        out.errors.append(
            f'the project has no <Choices name="{cfg.from_name}">, so its predictions would '
            f"not show; it has {have}: restart serve with that name"
        )
        return out
    if tag.get("toName") != cfg.to_name:
        out.errors.append(
            f'<Choices name="{cfg.from_name}"> labels toName="{tag.get("toName")}", '
            f"not {cfg.to_name!r}: restart serve with --to-name {tag.get('toName')}"
        )
    image = images.get(cfg.to_name)
    value = image.get("value", "") if image is not None else ""
    if image is not None and value.startswith("$") and value[1:] != cfg.data_key:
        out.errors.append(
            f'<Image name="{cfg.to_name}"> reads ${value[1:]}, not ${cfg.data_key}: '
            f"restart serve with --data-key {value[1:]}"
        )
    names = [c.get("value") or c.get("alias") for c in tag.iter("Choice")]
    missing = [c for c in classes if c not in names]
    if missing and len(missing) == len(classes):
        out.errors.append(
            f"none of the bundle's classes ({', '.join(classes)}) is a choice of "
            f'<Choices name="{cfg.from_name}"> ({", ".join(n for n in names if n)})'
        )
    elif missing:
        out.warnings.append(
            f"the bundle's classes {', '.join(missing)} are not choices of "
            f'<Choices name="{cfg.from_name}">: those predictions will not show'
        )
    return out


def project_config(uid: Any, sent: Any, cfg: LabelStudioConfig, log: Callable[[str], None]):
    """The project's labelling config, read through the API when the tool has a token, else
    the copy Label Studio sent (``schema`` or ``label_config``); None when neither."""
    pid = project_id(uid)
    if pid is not None and cfg.url and (cfg.token or cfg.token_from_env()):
        try:
            return client_for(cfg).project_config(pid)
        except LabelStudioError as e:
            log(f"cannot read project {pid}'s labelling config through the API ({e})")
    return sent if isinstance(sent, str) else None
