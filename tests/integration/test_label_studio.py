"""The exported tool against a real Label Studio 1.23 (tests/integration/ls_env.py).

One user session from start to end: a user and a Personal Access Token, a project with tasks
from a local-files storage and from an upload, ``sslstudio-tool serve`` as its ML backend,
"Retrieve predictions" (each task's choice must be ``sslstudio-tool classify``'s), a task whose
image cannot be read (no prediction stored; after the fix the next retrieve fills it), and the
tool's import JSON in a second project (every image link answers 200).

Skipped only when the package index cannot be reached to build Label Studio's venv.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.integration import ls_env
from tests.shapes import make_shapes_folder
from tests.tool.bundle_factory import make_bundle

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2700)]  # cold: venv + migrations
ROOT = Path(__file__).resolve().parents[2]
CONFIG = (
    '<View><Image name="image" value="$image"/><Choices name="choice" toName="image">'
    '<Choice value="circle"/><Choice value="square"/></Choices></View>'
)


@pytest.fixture(scope="module")
def ls_exe() -> Path | None:
    if os.environ.get("SSLSTUDIO_LS_URL"):
        return None
    try:
        return ls_env.ensure_venv()
    except ls_env.IndexUnreachable as e:
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def world(tmp_path_factory, ls_exe):
    """Label Studio running, a user's PAT, the images under its document root, a bundle.

    $SSLSTUDIO_LS_URL (+ _DOCROOT, and _TOKEN, a PAT, or _EMAIL and _PASSWORD) points the test
    at a Label Studio that is already running (its LOCAL_FILES_DOCUMENT_ROOT must be _DOCROOT)."""
    tmp = tmp_path_factory.mktemp("ls")
    running = os.environ.get("SSLSTUDIO_LS_URL")
    docroot = Path(os.environ["SSLSTUDIO_LS_DOCROOT"]) if running else tmp / "docroot"
    folder = docroot / f"shapes-{tmp.name}"
    images = make_shapes_folder(folder, per_class=3, size=40, shapes=("circle", "square"))
    bundle = make_bundle(tmp / "bundle", images)
    server = None
    if running:
        ls = ls_env.Running(
            running,
            os.environ.get("SSLSTUDIO_LS_EMAIL", ""),
            os.environ.get("SSLSTUDIO_LS_PASSWORD", ""),
            os.environ.get("SSLSTUDIO_LS_TOKEN"),
        )
    else:
        ls = server = ls_env.LabelStudio(ls_exe, tmp / "data", docroot, tmp / "label-studio.log")
    try:
        if server:
            started = time.monotonic()
            server.wait_ready()
            print(f"Label Studio answered after {time.monotonic() - started:.0f} s")
        pat = ls.personal_access_token()
        yield {
            "ls": ls,
            "api": ls_env.Api(ls.url, pat),
            "pat": pat,
            "tmp": tmp,
            "images": images,
            "bundle": bundle,
        }
    finally:
        if server:
            server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def tool(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sslstudio.tool", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
        **kw,
    )


def classify(bundle: Path, image: Path) -> str:
    out = image.parent / f".{image.name}.csv"
    try:
        tool("classify", str(bundle), str(image), "-o", str(out))
        with out.open() as f:
            return next(csv.DictReader(f))["label"]
    finally:
        out.unlink(missing_ok=True)


def serve(world, port: int, log: Path) -> subprocess.Popen:
    env = {**os.environ, "LABEL_STUDIO_API_KEY": world["pat"]}
    cmd = [
        sys.executable,
        "-m",
        "sslstudio.tool",
        "serve",
        str(world["bundle"]),
        "--port",
        str(port),
        "--label-studio-url",
        world["ls"].url,
    ]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log.open("wb")
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5):
                return proc
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(log.read_text()) from None
            time.sleep(0.5)
    proc.kill()
    raise TimeoutError("sslstudio-tool serve did not start")


def retrieve(api: ls_env.Api, project: int) -> None:
    api.call(
        "POST",
        f"/api/dm/actions?id=retrieve_tasks_predictions&project={project}",
        {"selectedItems": {"all": True, "excluded": []}},
    )


def tasks_of(api: ls_env.Api, project: int) -> list[dict]:
    doc = api.call("GET", f"/api/tasks?project={project}&page_size=1000&fields=all")
    return doc["tasks"] if isinstance(doc, dict) else doc


def predicted(task: dict) -> list[str]:
    return [r["value"]["choices"][0] for p in task.get("predictions", []) for r in p["result"]]


def test_predictions_from_a_live_label_studio(world):
    api, images, tmp = world["api"], world["images"], world["tmp"]
    project = api.call("POST", "/api/projects", {"title": "shapes", "label_config": CONFIG})["id"]
    storage = api.call(
        "POST",
        "/api/storages/localfiles",
        {
            "project": project,
            "path": str(images),
            "regex_filter": r".*\.png",
            "use_blob_urls": True,
            "recursive_scan": True,
            "title": "shapes",
        },
    )
    api.call("POST", f"/api/storages/localfiles/{storage['id']}/sync")
    extra = images.parent / "upload.png"
    shutil.copy(images / "square" / "square_0002.png", extra)  # an image from outside too
    api.upload(project, "upload.png", extra.read_bytes())
    port = ls_env.free_port()
    log = tmp / "tool.log"
    proc = serve(world, port, log)
    try:
        api.call(
            "POST",
            "/api/ml",
            {"project": project, "url": f"http://127.0.0.1:{port}", "title": "sslstudio-tool"},
        )
        retrieve(api, project)
        tasks = tasks_of(api, project)
        assert len(tasks) == len(list(images.rglob("*.png"))) + 1
        for task in tasks:
            source = _source(task["data"]["image"], images, extra)
            assert predicted(task) == [classify(world["bundle"], source)], task["data"]

        # a task whose image cannot be read stores nothing, and is asked for again
        new = images / "circle" / "circle_late.png"
        shutil.copy(images / "circle" / "circle_0001.png", new)
        api.call("POST", f"/api/storages/localfiles/{storage['id']}/sync")
        hidden = new.with_name(".hidden.png")
        new.rename(hidden)
        retrieve(api, project)
        late = [t for t in tasks_of(api, project) if "circle_late" in t["data"]["image"]]
        assert len(late) == 1 and predicted(late[0]) == []
        assert f"task {late[0]['id']}: no prediction" in log.read_text()
        hidden.rename(new)
        retrieve(api, project)
        late = [t for t in tasks_of(api, project) if t["id"] == late[0]["id"]]
        assert predicted(late[0]) == [classify(world["bundle"], new)]
    finally:
        proc.terminate()
        proc.wait(30)


def test_import_json_links_answer_200(world):
    api, images, tmp = world["api"], world["images"], world["tmp"]
    out = tmp / "import.json"
    # the default links: the folder's name under the document root (its parent here)
    tool(
        "classify",
        str(world["bundle"]),
        str(images),
        "-o",
        str(tmp / "p.csv"),
        "--label-studio",
        str(out),
    )
    project = api.call("POST", "/api/projects", {"title": "imported", "label_config": CONFIG})["id"]
    api.call(
        "POST",
        "/api/storages/localfiles",
        {"project": project, "path": str(images), "title": "shapes"},
    )  # no sync needed
    api.call("POST", f"/api/projects/{project}/import", json.loads(out.read_text()))
    tasks = tasks_of(api, project)
    assert len(tasks) == len(list(images.rglob("*.png")))
    for task in tasks:
        assert len(predicted(task)) == 1
        status, data = api.raw("GET", task["data"]["image"])
        assert status == 200 and data.startswith(b"\x89PNG"), task["data"]["image"]
    status, _ = api.raw("GET", tasks[0]["data"]["image"], accept="image/*")
    assert status == 406  # why the tool asks for */*


def test_a_config_that_would_hide_predictions_is_refused(world):
    api, tmp = world["api"], world["tmp"]
    config = CONFIG.replace('name="choice"', 'name="label"')
    project = api.call("POST", "/api/projects", {"title": "other names", "label_config": config})
    port = ls_env.free_port()
    log = tmp / "tool-mismatch.log"
    proc = serve(world, port, log)
    try:
        url = json.dumps({"project": project["id"], "url": f"http://127.0.0.1:{port}"}).encode()
        status, body = api.raw("POST", "/api/ml", url, "application/json")
    finally:
        proc.terminate()
        proc.wait(30)
    assert status == 400 and b"doesn't look like a valid ML backend" in body
    assert "restart serve with that name" in log.read_text()
    assert "--from-name label" in log.read_text()


def _source(ref: str, images: Path, uploaded: Path) -> Path:
    """The file behind a task's image URL."""
    if "/data/upload/" in ref:
        return uploaded
    rel = urllib.parse.unquote(ref.split("?d=", 1)[1])
    return images.parent / rel
