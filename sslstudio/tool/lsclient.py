"""Talking to Label Studio's API: authentication, image fetches and the project's config.

Label Studio 1.23 accepts two kinds of key. A Personal Access Token (the default since 1.15;
legacy tokens are off unless an admin enables them) is a JWT *refresh* token: ``POST
/api/token/refresh/ {"refresh": PAT}`` gives a short-lived access token sent as ``Authorization:
Bearer``, fetched again when it nears expiry or a request answers 401. A legacy token is sent
as ``Authorization: Token``. Which one a key is shows in its shape (a JWT has three dotted
base64 parts), so users paste whichever they have.

Image views (``/data/upload/``, ``/data/local-files/``) answer 406 to ``Accept: image/*``: they
negotiate against a fixed list, so the tool asks for ``*/*`` and checks the bytes itself.
Every request goes to the configured base URL only; redirects are refused (they could carry
the key elsewhere).
"""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote

REFRESH_PATH = "api/token/refresh/"
_EARLY_S = 30.0  # refresh an access token this long before it expires


class LabelStudioError(Exception):
    """A request to Label Studio that failed; the message says what to change."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def jwt_claims(token: str) -> dict[str, Any] | None:
    """The (unverified) payload of a JWT, or None when ``token`` is not one."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = parts[1] + "=" * (-len(parts[1]) % 4)
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except ValueError:  # binascii.Error and JSONDecodeError are ValueErrors
        return None
    return claims if isinstance(claims, dict) else None


def is_personal_access_token(token: str) -> bool:
    return jwt_claims(token) is not None


class LabelStudioClient:
    """GETs on one Label Studio server with whichever key the user gave (or none)."""

    def __init__(self, base_url: str, token: str | None, timeout_s: float = 15.0) -> None:
        self.base = base_url if base_url.endswith("/") else base_url + "/"
        self.token = token or None
        self.timeout_s = timeout_s
        self.personal = bool(self.token) and is_personal_access_token(self.token or "")
        self._access: str | None = None
        self._expires = 0.0
        self._lock = threading.Lock()
        self._opener = urllib.request.build_opener(_NoRedirects)

    @property
    def kind(self) -> str:
        if not self.token:
            return "no token"
        return "personal access token" if self.personal else "legacy token"

    def get(self, url: str, limit: int, accept: str = "*/*") -> bytes:
        """The body of ``url`` (on this server), at most ``limit`` bytes or an error."""
        for attempt in (0, 1):
            request = urllib.request.Request(url, headers={"Accept": accept})
            auth = self._authorization(renew=attempt == 1)
            if auth:
                request.add_header("Authorization", auth)
            try:
                with self._opener.open(request, timeout=self.timeout_s) as response:
                    data = response.read(limit + 1)
            except urllib.error.HTTPError as e:
                if e.code == 401 and attempt == 0 and self.personal:
                    continue  # the access token expired early or was revoked: one fresh try
                raise LabelStudioError(self._explain(e.code, url), e.code) from e
            except (urllib.error.URLError, OSError) as e:
                raise LabelStudioError(f"cannot reach {url} ({_reason(e)})") from e
            if len(data) > limit:
                raise LabelStudioError(f"{url} is larger than {limit} bytes")
            return data
        raise AssertionError("unreachable")

    def get_json(self, path: str) -> Any:
        data = self.get(self.base + path, 16 << 20, accept="application/json")
        try:
            return json.loads(data)
        except ValueError as e:
            raise LabelStudioError(f"{self.base}{path} did not answer JSON ({e})") from e

    def project_config(self, project: int) -> str:
        """The labelling config (XML) of project ``project``."""
        doc = self.get_json(f"api/projects/{quote(str(int(project)))}/")
        config = doc.get("label_config") if isinstance(doc, dict) else None
        if not isinstance(config, str):
            raise LabelStudioError(f"project {project} has no label_config in the API's answer")
        return config

    # ---- authentication -----------------------------------------------------------------
    def _authorization(self, renew: bool) -> str | None:
        if not self.token:
            return None
        if not self.personal:
            return f"Token {self.token}"
        with self._lock:  # one refresh at a time, however many tasks are being fetched
            if renew or self._access is None or time.time() > self._expires - _EARLY_S:
                self._access, self._expires = self._refresh()
            return f"Bearer {self._access}"

    def _refresh(self) -> tuple[str, float]:
        url = self.base + REFRESH_PATH
        body = json.dumps({"refresh": self.token}).encode("utf-8")
        request = urllib.request.Request(
            url,
            data=body,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        try:
            with self._opener.open(request, timeout=self.timeout_s) as response:
                doc = json.loads(response.read(1 << 20))
        except urllib.error.HTTPError as e:
            raise LabelStudioError(
                f"Label Studio refused the personal access token ({e.code} from {url}): "
                "create a new one under Account & Settings > Personal Access Token",
                e.code,
            ) from e
        except (urllib.error.URLError, OSError, ValueError) as e:
            raise LabelStudioError(f"cannot refresh the access token at {url} ({e})") from e
        access = doc.get("access") if isinstance(doc, dict) else None
        if not isinstance(access, str):
            raise LabelStudioError(f"{url} answered without an access token")
        claims = jwt_claims(access) or {}
        exp = claims.get("exp")
        return access, float(exp) if isinstance(exp, (int, float)) else time.time() + 60.0

    def _explain(self, status: int, url: str) -> str:
        if status == 401 and not self.token:
            hint = ": pass --label-studio-token (a personal access token) or $LABEL_STUDIO_API_KEY"
        elif status == 401 and not self.personal:
            hint = (
                ": Label Studio 1.23 turns legacy tokens off by default; use a personal "
                "access token (Account & Settings)"
            )
        elif status == 401:
            hint = ": the personal access token was refused; create a new one"
        elif status == 404:
            hint = " (no such file: check the storage's path and the task's URL)"
        elif status == 403:
            hint = ": the token's user cannot read it (is the user a member of the project?)"
        else:
            hint = ""
        return f"Label Studio answered {status} for {url}{hint}"


def _reason(e: BaseException) -> str:
    return str(getattr(e, "reason", None) or e)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect could lead anywhere (and carry the key along): refuse them all."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[override]
        raise urllib.error.HTTPError(
            req.full_url, code, f"redirect to {newurl} refused", headers, fp
        )
