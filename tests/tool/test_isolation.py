"""The tool runs where torch, sslstudio.core and PySide6 cannot be imported at all.

A ``sitecustomize`` on PYTHONPATH puts a finder first on ``sys.meta_path`` that raises
ImportError for those names (ahead of the editable-install finder too), then the real
commands run in that interpreter.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BLOCKER = """
import sys

class _Blocked:
    BLOCKED = {BLOCKED}

    def find_spec(self, name, path=None, target=None):
        if any(name == b or name.startswith(b + ".") for b in self.BLOCKED):
            raise ImportError(f"{{name}} is blocked in this test")
        return None

sys.meta_path.insert(0, _Blocked())
"""


def _run(
    tmp_path: Path, blocked: list[str], *args: str, code: str = ""
) -> subprocess.CompletedProcess:
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(BLOCKER.format(BLOCKED=repr(blocked)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    return subprocess.run(
        [sys.executable, "-c", code] if code else [sys.executable, "-m", "sslstudio.tool", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_blocker_works(tmp_path):
    r = _run(tmp_path, ["torch", "sslstudio.core"], code="import sslstudio.core.export.bundle")
    assert r.returncode != 0 and "sslstudio.core is blocked" in r.stderr
    r = _run(tmp_path, ["torch"], code="import sslstudio.imaging.decode, numpy; import torch")
    assert r.returncode != 0 and "torch is blocked" in r.stderr


def test_commands_without_torch_core_or_qt(tmp_path, bundle_dir, images):
    blocked = ["torch", "sslstudio.core", "PySide6", "torchvision", "timm", "onnx", "safetensors"]
    image = images / "circle" / "circle_0003.png"
    r = _run(tmp_path, blocked, "query", str(bundle_dir), str(image), "-k", "2", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["neighbours"][0]["path"] == "circle/circle_0003.png"
    out = tmp_path / "e.npy"
    r = _run(tmp_path, blocked, "embed", str(bundle_dir), str(images), "-o", str(out))
    assert r.returncode == 0 and out.exists(), r.stderr
    pred = tmp_path / "p.csv"
    r = _run(tmp_path, blocked, "classify", str(bundle_dir), str(images), "-o", str(pred))
    assert r.returncode == 0 and len(list(csv.DictReader(pred.open()))) == 8, r.stderr
    r = _run(tmp_path, blocked, "view", str(bundle_dir), str(image))
    assert r.returncode == 1
    assert "the viewer needs PySide6 (pip install PySide6-Essentials)" in r.stderr


@pytest.mark.parametrize("module", ["__main__", "server", "viewer", "labelstudio"])
def test_imports_stay_light(module):
    code = (
        f"import sys, sslstudio.tool.{module}; print(sorted(m for m in sys.modules "
        "if m.split('.')[0] in {'torch', 'PySide6', 'onnx', 'safetensors'} "
        "or m.startswith('sslstudio.core')))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_serve_command_without_torch(tmp_path, bundle_dir):
    import re
    import urllib.request

    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        BLOCKER.format(BLOCKED=repr(["torch", "sslstudio.core"]))
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    env.pop("SSLSTUDIO_TOOL_TOKEN", None)
    cmd = [sys.executable, "-m", "sslstudio.tool", "serve", str(bundle_dir), "--port", "0"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()
        port = re.search(r"http://127\.0\.0\.1:(\d+) ", line).group(1)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as r:
            assert json.loads(r.read())["status"] == "UP"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_serve_refuses_public_address_without_token(bundle_dir, monkeypatch, capsys):
    from sslstudio.tool.__main__ import main

    monkeypatch.delenv("SSLSTUDIO_TOOL_TOKEN", raising=False)
    assert main(["serve", str(bundle_dir), "--host", "0.0.0.0", "--port", "0"]) == 1
    assert "refusing to listen on 0.0.0.0 without --token" in capsys.readouterr().err
