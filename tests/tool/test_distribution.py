"""``sslstudio-tool`` as its own distribution (tool/pyproject.toml), in a venv without torch.

The venv is cached (``$SSLSTUDIO_TOOL_VENV`` or ``~/.cache/sslstudio/tool-venv``) so only the
first run downloads numpy, Pillow and onnxruntime; every run reinstalls the tool from this
checkout. Skipped only when the package index cannot be reached.
"""

from __future__ import annotations

import csv
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]
ROOT = Path(__file__).resolve().parents[2]


def _venv() -> Path:
    return Path(os.environ.get("SSLSTUDIO_TOOL_VENV", Path.home() / ".cache/sslstudio/tool-venv"))


def _pip(venv: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", *args],
        capture_output=True,
        text=True,
        timeout=1200,
        env=_clean_env(),
    )


def _clean_env() -> dict[str, str]:
    """No PYTHONPATH: the checkout must not be what the venv imports."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}


@pytest.fixture(scope="module")
def venv() -> Path:
    venv = _venv()
    if not (venv / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    first = not (venv / "bin" / "sslstudio-tool").exists()
    r = _pip(
        venv,
        "install",
        "-q",
        *([] if first else ["--force-reinstall", "--no-deps"]),
        str(ROOT / "tool"),
    )
    if r.returncode != 0:
        if re.search(
            r"(?i)connection|resolve|network|timed out|No matching distribution", r.stderr
        ):
            pytest.skip(f"package index unreachable: {r.stderr.strip()[-200:]}")
        raise AssertionError(r.stdout + r.stderr)
    return venv


def tool(venv: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(venv / "bin" / "sslstudio-tool"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env=_clean_env(),
    )


def test_installs_alone_without_torch(venv, tmp_path):
    r = _pip(venv, "check")
    assert r.returncode == 0 and "No broken requirements" in r.stdout, r.stdout + r.stderr
    names = {line.split("==")[0].lower() for line in _pip(venv, "freeze").stdout.split()}
    assert "sslstudio-tool" in names
    assert not names & {"torch", "torchvision", "pyside6", "pyside6-essentials", "timm", "onnx"}
    code = (
        "import importlib.util as u, sslstudio.tool as t;"
        "print(t.__file__, [u.find_spec(n) is None for n in ('torch', 'sslstudio.core')])"
    )
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=_clean_env(),
        check=True,
    ).stdout
    assert str(venv) in out and "[True, True]" in out
    size = sum(f.stat().st_size for f in venv.rglob("*") if f.is_file() and not f.is_symlink())
    print(f"tool venv: {size / 1e6:.0f} MB")


def test_main_install_pip_check():
    r = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_commands_run_from_the_distribution(venv, tmp_path, bundle_dir, images):
    png = images / "square" / "square_0001.png"
    r = tool(venv, tmp_path, "embed", str(bundle_dir), str(images), "-o", "x.npy")
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "x.items.json").read_text())["paths"]
    r = tool(venv, tmp_path, "query", str(bundle_dir), str(png), "-k", "2", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["neighbours"][0]["path"] == "square/square_0001.png"
    r = tool(venv, tmp_path, "classify", str(bundle_dir), str(png), "-o", "p.csv")
    assert r.returncode == 0, r.stderr
    with (tmp_path / "p.csv").open() as f:
        label = next(csv.DictReader(f))["label"]
    assert _served_label(venv, tmp_path, bundle_dir, png) == label


def _served_label(venv: Path, cwd: Path, bundle: Path, png: Path) -> str:
    port = free_port()
    proc = subprocess.Popen(
        [str(venv / "bin" / "sslstudio-tool"), "serve", str(bundle), "--port", str(port)],
        cwd=cwd,
        env=_clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                req = urllib.request.Request(
                    f"http://127.0.0.1:{port}/classify",
                    data=png.read_bytes(),
                    headers={"Content-Type": "image/png"},
                )
                with urllib.request.urlopen(req, timeout=10) as resp:
                    return json.loads(resp.read())["label"]
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
    finally:
        proc.terminate()
        proc.wait(10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
