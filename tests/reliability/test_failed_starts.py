"""A start that fails leaves no run behind: the same command, corrected, may use the same --out."""

from __future__ import annotations

import pytest

from sslstudio.cli.main import main
from sslstudio.paths import runs_dir
from tests.shapes import make_shapes_folder

TINY = ["--backbone", "tiny_cnn", "--image-size", "16", "--batch-size", "8", "--threads", "1"]


@pytest.fixture
def folder(tmp_path):
    return make_shapes_folder(tmp_path / "imgs", per_class=6, size=16, shapes=("circle", "square"))


@pytest.mark.parametrize(
    "bad, expected",
    [
        (["--option", "temperature=abc"], "temperature must be a number, got 'abc'"),
        (["--option", "temperature=true"], "temperature must be a number"),
        (["--weights", "/no/such/weights.safetensors"], "does not exist"),
        (["--empty"], "no usable images"),
    ],
)
@pytest.mark.parametrize("out_exists", [False, True])
def test_a_failed_start_leaves_out_reusable(folder, tmp_path, capsys, bad, expected, out_exists):
    out = tmp_path / "out"
    if out_exists:
        out.mkdir()
        (out / "notes.txt").write_text("mine")  # a folder the user made: kept, contents too
    empty = tmp_path / "empty"
    empty.mkdir()
    source = empty if bad == ["--empty"] else folder
    flags = [] if bad == ["--empty"] else bad
    assert main(["train", str(source), *TINY, *flags, "--out", str(out)]) != 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and expected in err, err  # TypeError traceback before
    assert not (out / "config.json").exists()  # written before: "already holds a run"
    assert (
        sorted(p.name for p in out.iterdir()) == ["notes.txt"] if out_exists else not out.exists()
    )
    good = ["train", str(folder), *TINY, "--max-steps", "1", "--quiet", "--out", str(out)]
    assert main(good) == 0, capsys.readouterr().err


def test_a_failed_start_without_out_leaves_no_folder_in_the_runs_directory(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["train", str(empty), *TINY]) != 0
    assert not runs_dir().exists() or list(runs_dir().iterdir()) == []
