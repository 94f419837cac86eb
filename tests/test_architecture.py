"""House rules that code review alone would let slip."""

import subprocess
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "sslstudio"


def _loaded(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_core_imports_no_qt():
    code = (
        "import sys, sslstudio.core.train.trainer, sslstudio.core.explore.embed, sslstudio.core.methods, sslstudio.cli.main; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'PySide6', 'pyqtgraph'} or m.startswith('sslstudio.gui')))"
    )
    assert _loaded(code) == "[]"


def test_import_sslstudio_is_light():
    code = "import sys, sslstudio, sslstudio.config, sslstudio.cli.main; print(sorted(m for m in ('torch', 'PySide6', 'numpy') if m in sys.modules))"
    assert _loaded(code) == "[]"


def test_imaging_is_torch_free():
    code = "import sys, sslstudio.imaging.decode; print('torch' in sys.modules)"
    assert _loaded(code) == "False"


def test_no_unsafe_deserialisation_and_no_giant_modules():
    for path in PKG.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "weights_only=False" not in text.replace(" ", ""), path
        assert "pickle.load" not in text, path
        assert len(text.splitlines()) <= 400, (
            f"{path} has {len(text.splitlines())} lines; split it by concern"
        )
    for path in (PKG / "core" / "methods").glob("*.py"):
        if path.name not in ("__init__.py", "base.py"):
            assert len(path.read_text().splitlines()) <= 150, path
