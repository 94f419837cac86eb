"""A real Label Studio 1.23 for tests: its own cached venv, a loopback server, a user and a PAT.

    python tests/integration/ls_env.py            # build (or check) the venv, print its path

The venv lives in ``$SSLSTUDIO_LS_VENV`` or ``~/.cache/sslstudio/label-studio-1.23`` and is
built once (minutes, ~1 GB), with an empty migrated database beside it (migrating takes
minutes too). ``sentry-sdk<3`` is pinned with it: Label Studio 1.23.2 asks for
``sentry-sdk>=2.16`` and does not start with 3.x. ``IndexUnreachable`` (the test skips) is
raised only when pip cannot reach the package index.

The server is started the way docs/label-studio.md tells a user to: a fresh data folder,
local-files serving on under a document root, ``ML_BLOCK_LOCAL_IP=false`` and
``SSRF_PROTECTION_ENABLED=false`` so a loopback ML backend can be added (and its webhook).
The user logs in through the login form and creates a Personal Access Token through
``POST /api/token/``, as the Account & Settings page does.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

SPEC = ["label-studio==1.23.*", "sentry-sdk<3"]
EMAIL, PASSWORD = "tester@example.com", "not-a-secret-1234"


class IndexUnreachable(Exception):
    """The package index cannot be reached: the live test is skipped, not failed."""


def venv_dir() -> Path:
    default = Path.home() / ".cache" / "sslstudio" / "label-studio-1.23"
    return Path(os.environ.get("SSLSTUDIO_LS_VENV", default))


def ensure_venv(log=print) -> Path:
    """The venv's ``label-studio`` executable, installing it the first time."""
    venv = venv_dir()
    exe = venv / "bin" / "label-studio"
    ready = venv / ".sslstudio-ready"
    if ready.exists() and exe.exists():
        return exe
    log(f"installing {' '.join(SPEC)} into {venv} (once; minutes)")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    r = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *SPEC],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        text = r.stdout + r.stderr
        if re.search(r"(?i)connection|resolve|network|timed out|No matching distribution", text):
            raise IndexUnreachable(f"cannot install label-studio: {text.strip()[-300:]}")
        raise RuntimeError(f"pip install label-studio failed:\n{text[-2000:]}")
    ready.write_text(" ".join(SPEC))
    return exe


def migrated_database(exe: Path) -> Path:
    """An empty, fully migrated database, made once beside the venv: migrating takes minutes
    and is the same for every run, so a fresh data folder starts from a copy of it."""
    template = exe.parent.parent / "empty-db" / "label_studio.sqlite3"
    if template.exists():
        return template
    work = template.parent.with_name("empty-db.tmp")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["LABEL_STUDIO_BASE_DATA_DIR"] = str(work)
    subprocess.run(  # every command migrates first; `version` then only prints
        [str(exe), "version"], env=env, cwd=work, check=True, capture_output=True, timeout=1800
    )
    template.parent.mkdir(exist_ok=True)
    shutil.copy(work / "label_studio.sqlite3", template)
    shutil.rmtree(work, ignore_errors=True)
    return template


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Session:
    """A user's way in: log in through the form, create a Personal Access Token."""

    url: str
    email: str = EMAIL
    password: str = PASSWORD

    def personal_access_token(self) -> str:
        """Log in through the form, then create a PAT as the Account page does."""
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        opener.open(self.url + "/user/login/", timeout=30).read()
        csrf = next(c.value for c in jar if c.name == "csrftoken")
        form = urlencode(
            {"email": self.email, "password": self.password, "csrfmiddlewaretoken": csrf}
        )
        req = urllib.request.Request(
            self.url + "/user/login/", data=form.encode(), headers={"Referer": self.url + "/"}
        )
        opener.open(req, timeout=30).read()
        if not any(c.name == "sessionid" for c in jar):
            raise RuntimeError("logging in to Label Studio failed (no session cookie)")
        csrf = next(c.value for c in jar if c.name == "csrftoken")
        req = urllib.request.Request(
            self.url + "/api/token/",
            data=b"{}",
            headers={
                "Content-Type": "application/json",
                "X-CSRFToken": csrf,
                "Referer": self.url + "/",
            },
        )
        with opener.open(req, timeout=30) as r:
            return json.loads(r.read())["token"]


class Running(Session):
    """A Label Studio someone else started."""

    def __init__(self, url: str, email: str, password: str, token: str | None = None) -> None:
        self.url, self.email, self.password = url.rstrip("/"), email, password
        self.token = token

    def personal_access_token(self) -> str:
        return self.token or super().personal_access_token()  # a user holds one PAT at a time


class LabelStudio(Session):
    """``label-studio start`` on 127.0.0.1 with a fresh data folder; stop() ends it."""

    def __init__(self, exe: Path, data: Path, docroot: Path, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        data.mkdir(parents=True, exist_ok=True)
        shutil.copy(migrated_database(exe), data / "label_studio.sqlite3")
        env = {
            **os.environ,
            "LABEL_STUDIO_BASE_DATA_DIR": str(data),
            "LOCAL_FILES_SERVING_ENABLED": "true",
            "LOCAL_FILES_DOCUMENT_ROOT": str(docroot),
            "ML_BLOCK_LOCAL_IP": "false",
            # 1.23.2: adding a loopback model saves it, then its automatic <model>/webhook
            # fails the general SSRF check inside the same request, which answers 403
            "SSRF_PROTECTION_ENABLED": "false",
            "SENTRY_DSN": "",
            "FRONTEND_SENTRY_DSN": "",
            "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "false",
        }
        env.pop("PYTHONPATH", None)  # our checkout must not shadow its packages
        self._log = open(log, "wb")  # noqa: SIM115 (closed in stop)
        cmd = [str(exe), "start", "--no-browser", "--internal-host", "127.0.0.1"]
        cmd += ["--port", str(self.port), "--username", EMAIL, "--password", PASSWORD]
        self.proc = subprocess.Popen(
            cmd,
            env=env,
            cwd=data,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.log_path = log

    def wait_ready(self, timeout_s: float = 600.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Label Studio exited; see {self.log_path}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=5) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(2)
        raise TimeoutError(f"Label Studio did not answer /health in {timeout_s:.0f} s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # its own session: runserver's children
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._log.close()


class Api:
    """Label Studio's REST API with a Bearer access token from a PAT."""

    def __init__(self, url: str, pat: str) -> None:
        self.url = url
        self.pat = pat
        self.access = self._refresh()

    def _refresh(self) -> str:
        body = json.dumps({"refresh": self.pat}).encode()
        req = urllib.request.Request(
            self.url + "/api/token/refresh/",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())["access"]

    def raw(
        self, method: str, path: str, body: bytes | None = None, ctype: str = "", accept="*/*"
    ) -> tuple[int, bytes]:
        headers = {"Authorization": f"Bearer {self.access}", "Accept": accept}
        if ctype:
            headers["Content-Type"] = ctype
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=300) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def call(self, method: str, path: str, doc: Any = None) -> Any:
        body = None if doc is None else json.dumps(doc).encode()
        status, data = self.raw(method, path, body, "application/json" if body else "")
        if status == 401:  # access tokens live minutes: refresh and retry once
            self.access = self._refresh()
            status, data = self.raw(method, path, body, "application/json" if body else "")
        if status >= 400:
            raise RuntimeError(f"{method} {path} -> {status}: {data[:500]!r}")
        return json.loads(data) if data else None

    def upload(self, project: int, name: str, data: bytes, ctype: str = "image/png") -> Any:
        boundary = uuid.uuid4().hex
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                f'filename="{name}"\r\n'
                f"Content-Type: {ctype}\r\n\r\n"
            ).encode()
            + data
            + f"\r\n--{boundary}--\r\n".encode()
        )
        status, out = self.raw(
            "POST",
            f"/api/projects/{project}/import",
            body,
            f"multipart/form-data; boundary={boundary}",
        )
        if status >= 400:
            raise RuntimeError(f"upload {name} -> {status}: {out[:500]!r}")
        return json.loads(out)


if __name__ == "__main__":
    print(ensure_venv())
