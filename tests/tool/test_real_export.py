"""The tool on a bundle from the real exporter (``sslstudio.core.export.bundle``) of a tiny trained
run:
it verifies, a training image finds itself first, and embeddings match the bundled rows, with
torch blocked in the tool's process."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

pytest.importorskip("sslstudio.core.export.bundle")

from sslstudio.tool.__main__ import main  # noqa: E402
from sslstudio.tool.bundle import load_bundle  # noqa: E402
from sslstudio.tool.interchange import items_path  # noqa: E402
from tests.tool.test_isolation import _run  # noqa: E402


@pytest.fixture(scope="module")
def exported(tmp_path_factory, module_home):
    from sslstudio.core.export.bundle import export_bundle
    from tests.core.test_export import make_trained_run

    run = make_trained_run(tmp_path_factory.mktemp("real-export"))
    folder = run.parent / "bundle"
    export_bundle(run, folder, absolute_paths=True)
    zipped = export_bundle(run, run.parent / "zipped", zip=True)
    return folder, zipped, run.parent / "shapes"


def test_real_bundle_round_trip(tmp_path, exported, capsys):
    folder, zipped, images = exported
    bundle = load_bundle(folder)
    assert load_bundle(zipped).onnx_model == bundle.onnx_model
    assert bundle.items_root == str(images.resolve())
    out = tmp_path / "e.npy"
    assert main(["embed", str(zipped), str(images), "-o", str(out)]) == 0
    rel = json.loads(items_path(out).read_text())["paths"]
    assert rel == list(bundle.paths)
    np.testing.assert_allclose(np.load(out), bundle.embeddings, atol=2e-4)
    capsys.readouterr()


def test_real_bundle_query_without_torch(tmp_path, exported):
    folder, _, images = exported
    bundle = load_bundle(folder)
    target = bundle.paths[5]
    r = _run(
        tmp_path,
        ["torch", "sslstudio.core", "PySide6"],
        "query",
        str(folder),
        str(images / target),
        "-k",
        "3",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    hits = json.loads(r.stdout)["neighbours"]
    assert hits[0]["path"] == target and hits[0]["score"] == pytest.approx(1.0, abs=1e-4)


def test_tool_classifies_as_the_studio_does(tmp_path):
    """Labels from the studio (``sslstudio classify``), exported, then ``sslstudio-tool classify``
    in a process without torch: the same label and confidence for every image."""
    import csv

    from sslstudio.cli.main import main as studio
    from sslstudio.core.export.bundle import export_bundle
    from tests.core.test_export import make_trained_run

    run = make_trained_run(tmp_path)
    assert (
        studio(["classify", str(run), "--from-subfolders", "-o", str(tmp_path / "studio.csv")]) == 0
    )
    export_bundle(run, tmp_path / "bundle")
    r = _run(
        tmp_path,
        ["torch", "sslstudio.core", "PySide6"],
        "classify",
        str(tmp_path / "bundle"),
        str(tmp_path / "shapes"),
        "-o",
        str(tmp_path / "tool.csv"),
    )
    assert r.returncode == 0, r.stderr
    studio_rows = {row["path"]: row for row in csv.DictReader((tmp_path / "studio.csv").open())}
    tool_rows = list(csv.DictReader((tmp_path / "tool.csv").open()))
    assert len(tool_rows) == len(studio_rows) == 24
    for row in tool_rows:
        ref = studio_rows[row["path"]]
        assert row["label"] == ref["label"]
        assert float(row["confidence"]) == pytest.approx(float(ref["confidence"]), abs=2e-3)


def test_stain_normalised_run_embeds_the_same_in_the_tool(tmp_path, module_home):
    """A run trained on Reinhard-normalised tiles: the manifest states it, and the torch-free
    tool, applying the same numpy function, reproduces the studio's embeddings."""
    from sslstudio.core.export.bundle import export_bundle
    from tests.core.test_export import make_trained_run

    run = make_trained_run(tmp_path, name="reinhard", input_norm="reinhard")
    bundle = load_bundle(export_bundle(run, tmp_path / "bundle", absolute_paths=True))
    assert bundle.input.normalisation == "reinhard"
    out = tmp_path / "e.npy"
    assert main(["embed", str(tmp_path / "bundle"), str(tmp_path / "shapes"), "-o", str(out)]) == 0
    np.testing.assert_allclose(np.load(out), bundle.embeddings, atol=2e-4)
    # and the normalisation mattered: the same model on raw pixels gives other features
    from sslstudio.tool.inference import Model

    model = Model(bundle)
    pixels = np.stack([model.pixels(tmp_path / "shapes" / p) for p in bundle.paths[:4]])
    raw = dataclasses.replace(bundle, input=dataclasses.replace(bundle.input, normalisation="none"))
    assert np.abs(Model(raw).embed_pixels(pixels) - model.embed_pixels(pixels)).max() > 1e-3
