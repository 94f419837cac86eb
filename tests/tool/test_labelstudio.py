"""Label Studio 1.23's side of the ML backend, against a stand-in that behaves as it does:
Personal Access Tokens (refresh -> Bearer access, 401 when it expires), 406 for image/*,
the project's labelling config through the API, and the /webhook Label Studio adds."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sslstudio.tool.labelstudio import (
    LabelStudioConfig,
    check_label_config,
    client_for,
    project_id,
)
from sslstudio.tool.lsclient import LabelStudioClient, LabelStudioError, is_personal_access_token
from tests.tool.test_server import CONFIG, call, running


def jwt(claims: dict) -> str:
    def part(d: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")

    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


PAT = jwt({"token_type": "refresh", "user_id": 1, "exp": 4102444800})


@contextmanager
def label_studio(png: bytes, config: str = CONFIG, access_life_s: float = 300.0) -> Iterator:
    """Refresh gives a fresh access token; images and the project need a live one."""
    state = {"refreshes": 0, "live": set(), "seen": []}

    class H(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if self.path != "/api/token/refresh/" or body.get("refresh") != PAT:
                return self._send(401, b'{"detail": "Token is invalid"}')
            state["refreshes"] += 1
            access = jwt(
                {
                    "token_type": "access",
                    "exp": time.time() + access_life_s,
                    "n": state["refreshes"],
                }
            )  # a new token each time
            state["live"].add(access)
            self._send(200, json.dumps({"access": access}).encode())

        def do_GET(self):
            auth = self.headers.get("Authorization", "")
            state["seen"].append((self.path, self.headers.get("Accept")))
            if not (auth.startswith("Bearer ") and auth[7:] in state["live"]):
                return self._send(
                    401, b'{"detail": "Authentication credentials were not provided."}'
                )
            if self.path == "/api/projects/3/":
                return self._send(200, json.dumps({"id": 3, "label_config": config}).encode())
            if self.headers.get("Accept") != "*/*":
                return self._send(
                    406, b'{"detail": "Could not satisfy the request Accept header."}'
                )
            self._send(200, png)

        def _send(self, status: int, data: bytes):
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *a):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}", state
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.fixture(scope="module")
def png(images) -> bytes:
    return (images / "circle" / "circle_0001.png").read_bytes()


def test_token_kinds():
    assert is_personal_access_token(PAT)
    assert not is_personal_access_token("3f1e0b5c2a9d4e7f8a6b1c0d2e3f4a5b6c7d8e9f")
    assert not is_personal_access_token("a.b.c")  # three parts, but not base64 JSON


def test_personal_access_token_refreshed_once_and_again_on_401(png):
    with label_studio(png) as (url, state):
        client = LabelStudioClient(url, PAT)
        assert client.get(url + "/data/upload/1/a.png", 1 << 20) == png
        assert client.get(url + "/data/upload/1/a.png", 1 << 20) == png
        assert state["refreshes"] == 1  # the access token is kept while it lives
        assert state["seen"][0] == ("/data/upload/1/a.png", "*/*")  # image/* would get 406
        state["live"].clear()  # revoked or expired early: Label Studio answers 401
        assert client.get(url + "/data/upload/1/a.png", 1 << 20) == png
        assert state["refreshes"] == 2


def test_expiring_access_token_is_refreshed_before_use(png):
    with label_studio(png, access_life_s=5.0) as (url, state):  # inside the 30 s margin
        client = LabelStudioClient(url, PAT)
        client.get(url + "/x.png", 1 << 20)
        client.get(url + "/x.png", 1 << 20)
        assert state["refreshes"] == 2


def test_refused_token_says_what_to_do(png):
    with label_studio(png) as (url, _):
        with pytest.raises(LabelStudioError, match="refused the personal access token"):
            LabelStudioClient(url, jwt({"token_type": "refresh"})).get(url + "/x.png", 100)
        with pytest.raises(LabelStudioError, match="turns legacy tokens off by default"):
            LabelStudioClient(url, "legacy-key").get(url + "/x.png", 100)
        with pytest.raises(LabelStudioError, match="--label-studio-token"):
            LabelStudioClient(url, None).get(url + "/x.png", 100)


def test_predict_with_a_pat_and_failures_store_nothing(model, png):
    with label_studio(png) as (ls_url, state):
        ls = LabelStudioConfig(url=ls_url, token=PAT)
        with running(model, label_studio=ls) as url:
            tasks = [
                {"id": 1, "data": {"image": "/data/upload/1/a.png"}},
                {"id": 2, "data": {"image": "https://elsewhere.example/a.png"}},
            ]
            doc = json.dumps({"tasks": tasks, "project": "3.1700000000"}).encode()
            status, body = call(url, "/predict", doc, "application/json")
    assert status == 200
    first, second = body["results"]
    assert first["result"][0]["value"]["choices"][0] in ("circle", "square")
    assert second == []  # a list with no prediction: Label Studio stores nothing for task 2
    assert body["errors"] == [{"task": 2, "error": body["errors"][0]["error"]}]
    assert "not on Label Studio" in body["errors"][0]["error"]


def test_setup_reads_the_config_through_the_api_and_refuses_a_mismatch(model, png):
    other = CONFIG.replace('name="choice"', 'name="label"')
    with label_studio(png, config=other) as (ls_url, state):
        ls = LabelStudioConfig(url=ls_url, token=PAT)
        with running(model, label_studio=ls) as url:
            # the schema sent in the body matches; the project's real config does not
            doc = json.dumps({"project": "3.1700000000", "schema": CONFIG}).encode()
            status, body = call(url, "/setup", doc, "application/json")
    assert status == 400
    assert 'no <Choices name="choice">' in body["error"] and "--from-name label" in body["error"]
    assert ("/api/projects/3/", "application/json") in state["seen"]


def test_webhook_answers(url):
    doc = json.dumps({"action": "ANNOTATION_CREATED", "project": {"id": 1}}).encode()
    status, body = call(url, "/webhook", doc, "application/json")
    assert status == 200 and body["status"] == "ignored" and body["action"] == "ANNOTATION_CREATED"


@pytest.fixture(scope="module")
def url(model):
    with running(model) as u:
        yield u


CLASSES = ("circle", "square")


@pytest.mark.parametrize(
    ("edit", "errors", "warnings"),
    [
        (lambda c: c, [], []),
        (lambda c: c.replace('name="choice"', 'name="cls"'), ["--from-name cls"], []),
        (lambda c: c.replace('toName="image"', 'toName="img"'), ["--to-name img"], []),
        (lambda c: c.replace('value="$image"', 'value="$picture"'), ["--data-key picture"], []),
        (lambda c: c.replace('"square"', '"box"'), [], ["square are not choices"]),
        (
            lambda c: c.replace('"square"', '"box"').replace('"circle"', '"disc"'),
            ["none of the bundle's classes"],
            [],
        ),
        (lambda c: c[:-3], [], ["does not parse"]),
    ],
)
def test_label_config_check(edit, errors, warnings):
    check = check_label_config(edit(CONFIG), LabelStudioConfig(), CLASSES)
    assert len(check.errors) == len(errors) and len(check.warnings) == len(warnings)
    for words, line in zip(errors + warnings, check.errors + check.warnings):
        assert words in line


def test_project_id_and_client_cache():
    assert project_id("12.1700000000") == 12 and project_id("x") is None
    cfg = LabelStudioConfig(url="http://127.0.0.1:1", token="k")
    assert client_for(cfg) is client_for(LabelStudioConfig(url="http://127.0.0.1:1", token="k"))
