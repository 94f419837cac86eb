"""``sslstudio export``: a bundle from a trained run, a summary on stdout, errors as one line."""

from __future__ import annotations

import json
import zipfile

from sslstudio.cli.main import main
from tests.core.test_export import make_trained_run


def test_export_writes_a_bundle_and_summarises_it(tmp_path, capsys):
    run = make_trained_run(tmp_path)
    assert main(["export", str(run), "-o", str(tmp_path / "bundle")]) == 0
    out = capsys.readouterr()
    assert f"bundle: {tmp_path / 'bundle'}" in out.out
    assert "model.onnx" in out.out and "24 images indexed, 128-d features" in out.out
    assert "no family format: tiny_cnn" in out.out
    assert "onnx..." in out.err and "embedding..." in out.err
    m = json.loads((tmp_path / "bundle" / "manifest.json").read_text())
    assert m["training"]["checkpoint"] == "final" and not m["index"]["absolute_paths"]

    argv = ["export", str(run), "-o", str(tmp_path / "z"), "--zip", "--absolute-paths"]
    assert main([*argv, "--checkpoint", "step_0000004"]) == 0
    with zipfile.ZipFile(tmp_path / "z.zip") as zf:
        m = json.loads(zf.read("manifest.json"))
        items = json.loads(zf.read("items.json"))
    assert m["training"]["checkpoint"] == "step_0000004" and m["training"]["steps"] == 4
    assert items["root"] == str((tmp_path / "shapes").resolve())


def test_export_errors_are_one_line(tmp_path, capsys):
    assert main(["export", str(tmp_path), "-o", str(tmp_path / "b")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("sslstudio: error:") and "not a run folder" in err
    assert "Traceback" not in err and not (tmp_path / "b").exists()
