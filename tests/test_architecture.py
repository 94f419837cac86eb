"""House rules that code review alone would let slip."""

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "sslstudio"
MAX_FUNCTION_LINES = 80


def _loaded(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_core_imports_no_qt():
    code = (
        "import sys, sslstudio.core.train.trainer, sslstudio.core.explore.embed, "
        "sslstudio.core.methods, sslstudio.cli.main; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'PySide6', 'pyqtgraph'} "
        "or m.startswith('sslstudio.gui')))"
    )
    assert _loaded(code) == "[]"


def test_import_sslstudio_is_light():
    code = (
        "import sys, sslstudio, sslstudio.config, sslstudio.cli.main; "
        "print(sorted(m for m in ('torch', 'PySide6', 'numpy') if m in sys.modules))"
    )
    assert _loaded(code) == "[]"


def test_imaging_is_torch_free():
    code = "import sys, sslstudio.imaging.decode; print('torch' in sys.modules)"
    assert _loaded(code) == "False"


def test_no_unsafe_deserialisation():
    for path in PKG.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "weights_only=False" not in text.replace(" ", ""), path
        assert "pickle.load" not in text, path


def test_method_files_stay_small():
    for path in (PKG / "core" / "methods").glob("*.py"):
        if path.name not in ("__init__.py", "base.py"):
            assert len(path.read_text().splitlines()) <= 150, path


def test_import_contracts_hold():
    """The floors of docs/architecture.md, as contracts in pyproject.toml ([tool.importlinter])."""
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "from importlinter.cli import lint_imports_command; lint_imports_command()",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "0 broken" in out.stdout


def test_no_import_cycles():
    """No two modules import each other, directly or round a loop, even inside a function."""
    graph = grimp.build_graph("sslstudio")
    mods = sorted(m for m in graph.modules if m.startswith("sslstudio"))
    edges = {m: graph.find_modules_directly_imported_by(m) & set(mods) for m in mods}
    cycles = [c for c in _strongly_connected(mods, edges) if len(c) > 1]
    assert cycles == [], f"import cycles: {cycles}"


def _strongly_connected(nodes: list[str], edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative (the graph has a few hundred modules)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        top = stack.pop()
                        on_stack.discard(top)
                        component.append(top)
                        if top == node:
                            break
                    found.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(edges[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return found


def test_strongly_connected_finds_a_loop():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert [c for c in _strongly_connected(list(edges), edges) if len(c) > 1] == [["a", "b", "c"]]


def test_functions_are_short():
    """Size by a measure of size: no function over 80 lines (ruff checks statements and
    branches)."""
    long = []
    for path in PKG.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long.append(
                        f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)"
                    )
    assert long == [], "split these by job:\n" + "\n".join(long)


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is installed with the test extra")
def test_ruff_format_and_lint():
    for args in (["format", "--check"], ["check"]):
        out = subprocess.run(
            ["ruff", *args, "sslstudio", "tests", "bench", "packaging"],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        assert out.returncode == 0, (
            f"ruff {' '.join(args)}:\n{out.stdout[-4000:]}{out.stderr[-1000:]}"
        )
