"""Start-up: the window's modules do not import torch, and ``--selftest`` passes end to end."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "QT_QPA_PLATFORM": "offscreen", "SSLSTUDIO_HOME": str(home)}


def test_importing_the_window_does_not_import_torch(tmp_path: Path) -> None:
    code = (
        "import sys, sslstudio.gui.app, sslstudio.gui.main_window, sslstudio.gui.run.worker, "
        "sslstudio.gui.run.controller; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'torch', 'torchvision'}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=_env(tmp_path)
    )
    assert out.stdout.strip() == "[]"


def test_selftest_passes_quickly(tmp_path: Path) -> None:
    t0 = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "sslstudio", "--selftest"],
        capture_output=True,
        text=True,
        env=_env(tmp_path),
        timeout=120,
    )
    elapsed = time.monotonic() - t0
    assert out.returncode == 0, out.stdout + out.stderr
    assert "selftest OK" in out.stdout and "124 images" in out.stdout
    assert elapsed < 60
    assert not (tmp_path / "runs").exists()  # the selftest trains in a temporary home of its own
