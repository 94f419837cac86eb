"""The HTTP server on port 0 in a thread, hit with urllib: the JSON API, Label Studio's ML
backend protocol, and the safety rules (token, Host, sizes, media types, fetch origins)."""

from __future__ import annotations

import base64
import http.client
import json
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sslstudio.tool.inference import ToolError
from sslstudio.tool.labelstudio import LabelStudioConfig
from sslstudio.tool.search import NeighbourIndex
from sslstudio.tool.server import ServerConfig, ToolServer, host_allowed


@contextmanager
def running(model, **cfg) -> Iterator[str]:
    cfg.setdefault("port", 0)
    server = ToolServer(
        model, NeighbourIndex(model.bundle.embeddings), ServerConfig(quiet=True, **cfg)
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def url(model):
    with running(model, max_body_bytes=64 << 10) as u:
        yield u


def call(url: str, path: str, body: bytes | None = None, ctype: str = "image/png", **headers):
    req = urllib.request.Request(url + path, data=body, headers=dict(headers))
    if body is not None:
        req.add_header("Content-Type", ctype)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


CONFIG = (
    '<View><Image name="image" value="$image"/><Choices name="choice" toName="image">'
    '<Choice value="circle"/><Choice value="square"/></Choices></View>'
)


@pytest.fixture(scope="module")
def png(images) -> bytes:
    return (images / "square" / "square_0001.png").read_bytes()


def test_health(url):
    status, body = call(url, "/health")
    assert status == 200 and body["status"] == "UP"
    assert body["items"] == 8 and body["classes"] == ["circle", "square"]


def test_embed_raw_and_json_agree(url, model, png):
    s1, raw = call(url, "/embed", png)
    b64 = base64.b64encode(png).decode()
    s2, js = call(url, "/embed", json.dumps({"image": b64}).encode(), "application/json")
    s3, uri = call(
        url,
        "/embed",
        json.dumps({"image": "data:image/png;base64," + b64}).encode(),
        "application/json",
    )
    assert s1 == s2 == s3 == 200 and raw["dim"] == 16
    assert raw["embedding"] == js["embedding"] == uri["embedding"]
    row = model.bundle.paths.index("square/square_0001.png")
    assert raw["embedding"] == pytest.approx(model.bundle.embeddings[row].tolist(), abs=1e-5)


def test_query_and_classify(url, png):
    status, body = call(url, "/query?k=3", png)
    assert status == 200 and len(body["neighbours"]) == 3
    assert body["neighbours"][0]["path"] == "square/square_0001.png"
    assert body["neighbours"][0]["score"] == pytest.approx(1.0, abs=1e-5)
    status, body = call(url, "/classify", png)
    assert status == 200 and body["label"] in ("circle", "square")
    assert sum(body["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert body["confidence"] == max(body["probabilities"].values())


@pytest.mark.parametrize(
    ("path", "body", "ctype", "status", "words"),
    [
        ("/embed", b"x" * (65 << 10), "image/png", 413, "over the 65536-byte limit"),
        ("/embed", b"plain text, not an image", "image/png", 415, "not an image"),
        ("/embed", b"\x89PNG\r\n\x1a\n" + bytes(40), "image/png", 400, "does not decode: corrupt"),
        ("/embed", b"hello", "text/plain", 415, "send the image"),
        ("/embed", b"{oops", "application/json", 400, "not valid JSON"),
        ("/embed", b'{"image": "%%%"}', "application/json", 400, "not valid base64"),
        ("/query?k=0", b"x", "image/png", 400, "k must be in"),
        ("/query?k=ten", b"x", "image/png", 400, "k must be an integer"),
        ("/nothing", b"x", "image/png", 404, "no such endpoint"),
        ("/health", b"x", "image/png", 405, "takes GET"),
        ("/predict", b"{}", "text/plain", 415, "application/json"),
        ("/predict", b"{}", "application/json", 400, "tasks"),
    ],
)
def test_errors_are_json(url, path, body, ctype, status, words):
    got, payload = call(url, path, body, ctype)
    assert got == status and words in payload["error"]


def test_host_header_checked(url):
    port = url.rsplit(":", 1)[1]
    status, body = call(url, "/health", Host=f"evil.example:{port}")
    assert status == 403 and "is not this server (DNS rebinding defence)" in body["error"]
    assert call(url, "/health", Host=f"localhost:{port}")[0] == 200
    assert call(url, "/health", Host="localhost:1")[0] == 403  # another port: not us


def test_host_rules():
    assert host_allowed("127.0.0.1:8765", "127.0.0.1", 8765, ())
    assert host_allowed("[::1]:8765", "::1", 8765, ())
    assert host_allowed("192.168.1.5:8765", "0.0.0.0", 8765, ())  # IP literals cannot rebind
    assert host_allowed("LOCALHOST.:8765", "127.0.0.1", 8765, ())
    assert host_allowed("tool.lab", "0.0.0.0", 8765, ("tool.lab",))  # proxy: any port
    assert not host_allowed("tool.lab:8765", "0.0.0.0", 8765, ())
    assert not host_allowed("localhost", "127.0.0.1", 8765, ())  # port 80 implied
    assert not host_allowed(None, "127.0.0.1", 8765, ())


def test_token_required_when_set(model, png):
    with running(model, token="s3cret") as url:
        assert call(url, "/health")[0] == 401
        assert call(url, "/health", Authorization="Token wrong")[0] == 401
        assert call(url, "/health", Authorization="Token s3cret")[0] == 200
        assert call(url, "/query", png, Authorization="Bearer s3cret")[0] == 200
        basic = base64.b64encode(b"labelstudio:s3cret").decode()
        assert call(url, "/health", Authorization=f"Basic {basic}")[0] == 200


def test_refuses_public_bind_without_token(model):
    with pytest.raises(ToolError, match="refusing to listen on 0.0.0.0 without --token"):
        ToolServer(model, NeighbourIndex(model.bundle.embeddings), ServerConfig(host="0.0.0.0"))


def test_label_studio_setup_and_predict_with_data_uri(url, png):
    status, body = call(
        url,
        "/setup",
        json.dumps({"project": "1.1700000000", "schema": CONFIG}).encode(),
        "application/json",
    )
    assert status == 200 and body["model_version"].startswith("simclr-")
    tasks = [
        {"id": 7, "data": {"image": "data:image/png;base64," + base64.b64encode(png).decode()}},
        {"id": 8, "data": {"image": "/data/upload/1/x.png"}},
    ]
    status, body = call(url, "/predict", json.dumps({"tasks": tasks}).encode(), "application/json")
    assert status == 200 and len(body["results"]) == 2
    first = body["results"][0]
    assert first["result"][0]["from_name"] == "choice" and first["result"][0]["to_name"] == "image"
    assert first["result"][0]["type"] == "choices"
    assert first["score"] == pytest.approx(call(url, "/classify", png)[1]["confidence"])
    assert body["results"][1] == []  # no --label-studio-url: not fetched, and nothing stored
    assert body["errors"][0]["task"] == 8 and "--label-studio-url" in body["errors"][0]["error"]


@contextmanager
def fake_label_studio(png: bytes, other: str = "") -> Iterator[tuple[str, list]]:
    """A stand-in Label Studio: /data/upload/a.png needs the token, /jump redirects away."""
    seen: list[str] = []

    class H(BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(f"{self.path} {self.headers.get('Authorization')}")
            if self.path == "/jump":
                self.send_response(302)
                self.send_header("Location", other + "/data/upload/a.png")
                self.end_headers()
            elif self.headers.get("Accept") not in ("*/*", None):  # as Label Studio's views
                self.send_response(406)
                self.end_headers()
            elif self.headers.get("Authorization") != "Token ls-key":
                self.send_response(401)
                self.end_headers()
            else:
                self.send_response(200)
                self.send_header("Content-Length", str(len(png)))
                self.end_headers()
                self.wfile.write(png)

        def log_message(self, *a):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}", seen
    finally:
        srv.shutdown()
        srv.server_close()


def test_label_studio_urls_fetched_only_from_label_studio(model, png):
    with (
        fake_label_studio(png) as (elsewhere, elsewhere_seen),
        fake_label_studio(png, other=elsewhere) as (ls_url, seen),
    ):
        ls = LabelStudioConfig(url=ls_url, token="ls-key", from_name="c", to_name="img")
        with running(model, label_studio=ls) as url:
            tasks = [
                {"id": 1, "data": {"image": "/data/upload/a.png"}},
                {"id": 2, "data": {"image": ls_url + "/data/upload/a.png"}},
                {"id": 3, "data": {"image": elsewhere + "/data/upload/a.png"}},
                {"id": 4, "data": {"image": "file:///etc/passwd"}},
                {"id": 5, "data": {"image": "/jump"}},
                {"id": 6, "data": {"image": "//evil.example/a.png"}},
            ]
            status, body = call(
                url, "/predict", json.dumps({"tasks": tasks}).encode(), "application/json"
            )
    assert status == 200
    assert [isinstance(r, dict) for r in body["results"]] == [True, True] + [False] * 4
    assert body["results"][0]["result"][0]["from_name"] == "c"
    assert seen == ["/data/upload/a.png Token ls-key"] * 2 + ["/jump Token ls-key"]
    assert elsewhere_seen == []  # neither directly nor through the redirect


def test_unread_body_does_not_reset_the_connection(url):
    port = int(url.rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("POST", "/nothing", body=b"y" * 200_000, headers={"Content-Type": "image/png"})
    resp = conn.getresponse()
    assert resp.status == 404 and "no such endpoint" in json.loads(resp.read())["error"]
    conn.close()
