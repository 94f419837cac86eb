"""Silent nonsense and tracebacks on bad arguments, second round: each is refused in one line."""

from __future__ import annotations

import json
import shutil

import pytest

from sslstudio.cli.main import main
from sslstudio.tool.__main__ import main as tool_main
from tests.shapes import make_shapes_folder
from tests.tool.bundle_factory import make_bundle, onnx_bytes, rehash, tiny_net

TINY = ["--backbone", "tiny_cnn", "--image-size", "16", "--batch-size", "8", "--threads", "1"]


def _refused(run, argv, capsys, *expected) -> str:
    with pytest.raises(SystemExit) as exc:
        run(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert "error:" in last and all(e in last for e in expected), err
    return last


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["eval", "R", "--train", "D", "--temperature", "0"], "--temperature"),
        (["eval", "R", "--train", "D", "--temperature", "1e-9"], "from 0.01"),
        (["eval", "R", "--train", "D", "--temperature", "-0.1"], "--temperature"),
        (["eval", "R", "--train", "D", "--temperature", "nan"], "--temperature"),
        (["eval", "R", "--train", "D", "-k", "0"], "argument -k"),
        (["neighbors", "R", "--outliers", "-2"], "--outliers"),
        (["neighbors", "R", "IMG", "-k", "-3"], "argument -k"),
        (["neighbors", "R", "IMG", "--group", "("], "not a valid regex"),
        (["neighbors", "R", "--duplicates", "inf"], "--duplicates"),
        (["neighbors", "R", "--duplicates", "1.5"], "--duplicates"),
    ],
)
def test_studio_commands_refuse_nonsense_numbers_and_patterns(capsys, argv, expected):
    _refused(main, argv, capsys, expected)


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["serve", "B", "--port", "99999"], "--port"),
        (["serve", "B", "--port", "-1"], "--port"),
        (["serve", "B", "--max-body-mb", "nan"], "--max-body-mb"),
        (["query", "B", "IMG", "-k", "0"], "argument -k"),
        (["embed", "B", "D", "-o", "x.npy", "--batch-size", "0"], "--batch-size"),
        (["view", "B", "IMG", "--threads", "-2"], "--threads"),
    ],
)
def test_tool_commands_refuse_nonsense_numbers(capsys, argv, expected):
    _refused(tool_main, argv, capsys, expected)


def test_scan_of_a_file_says_it_is_a_file(tmp_path, capsys):
    f = tmp_path / "photo.png"
    f.write_bytes(b"x")
    assert main(["scan", str(f)]) != 0
    assert "is not a folder" in capsys.readouterr().err


@pytest.fixture(scope="module")
def run(tmp_path_factory, module_home):
    root = tmp_path_factory.mktemp("refusals")
    folder = make_shapes_folder(root / "imgs", per_class=6, size=16, shapes=("circle", "square"))
    out = root / "run"
    assert (
        main(["train", str(folder), *TINY, "--max-steps", "2", "--quiet", "--out", str(out)]) == 0
    )
    return out, folder


def test_resuming_a_finished_run_does_not_print_a_nan_loss(run, capsys):
    out, _ = run
    assert main(["train", "--resume", str(out), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "nan" not in err and "already finished" in err, err


def test_embed_after_config_json_changed_is_one_clear_line(run, tmp_path, capsys):
    out, folder = run
    copy = shutil.copytree(out, tmp_path / "run")
    cfg = json.loads((copy / "config.json").read_text())
    cfg["backbone"] = "resnet18"  # edited by hand since the run trained
    (copy / "config.json").write_text(json.dumps(cfg))
    assert main(["embed", str(copy), str(folder), "-o", str(tmp_path / "f.npz")]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "belongs to another model" in err and "config.json" in err


@pytest.fixture(scope="module")
def tool_bundle(tmp_path_factory):
    root = tmp_path_factory.mktemp("refusal-bundle")
    images = make_shapes_folder(root / "imgs", per_class=2, size=32, shapes=("circle", "square"))
    return make_bundle(root / "bundle", images), images


def test_query_on_a_graph_that_fails_in_onnxruntime_is_one_clear_line(
    tool_bundle, tmp_path, capsys
):
    bundle, images = tool_bundle
    bad = shutil.copytree(bundle, tmp_path / "b")
    (bad / "model.onnx").write_bytes(onnx_bytes(tiny_net(), 48))  # fixed 48 px, fed 32 px
    rehash(bad, lambda m: m["onnx"].pop("weights"))  # self-contained: nothing shared
    image = next(images.rglob("*.png"))
    assert tool_main(["query", str(bad), str(image)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "failed in onnxruntime" in err


def test_view_without_a_display_is_one_clear_line(tool_bundle, monkeypatch, capsys):
    bundle, images = tool_bundle
    for var in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(var, raising=False)
    assert tool_main(["view", str(bundle), str(next(images.rglob("*.png")))]) == 1
    err = capsys.readouterr().err
    assert "no display" in err and "Traceback" not in err
