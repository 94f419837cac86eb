"""The commands end to end on a generated bundle: embed reproduces the bundled embeddings, a
training image finds itself first, classify matches the documented formula, bad files are
skipped with a reason, and errors are one line with exit 1."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest

from sslstudio.tool.__main__ import main
from sslstudio.tool.bundle import load_bundle
from sslstudio.tool.interchange import items_path


@pytest.fixture
def messy(tmp_path, images):
    """The images plus a truncated PNG, a text file and OS junk."""
    folder = shutil.copytree(images, tmp_path / "messy")
    good = (folder / "circle" / "circle_0000.png").read_bytes()
    (folder / "circle" / "broken.png").write_bytes(good[: len(good) // 2])
    (folder / "notes.txt").write_text("not an image")
    (folder / ".DS_Store").write_bytes(b"junk")
    return folder


def test_info(bundle_dir, capsys):
    assert main(["info", str(bundle_dir)]) == 0
    out = capsys.readouterr().out
    assert "8 x 16" in out and "circle, square" in out and "verified" in out


def test_embed_reproduces_bundled_rows(tmp_path, bundle_dir, images, capsys):
    out = tmp_path / "out" / "emb.npy"
    assert main(["embed", str(bundle_dir), str(images), "-o", str(out), "--batch-size", "3"]) == 0
    features = np.load(out, allow_pickle=False)
    items = json.loads(items_path(out).read_text())
    bundle = load_bundle(bundle_dir)
    assert items["paths"] == list(bundle.paths) and items["skipped"] == []
    assert items["root"] == str(images.resolve()) and items["normalised"] is True
    np.testing.assert_allclose(features, bundle.embeddings, atol=1e-5)  # ORT == PyTorch
    assert "8 embeddings (16-d)" in capsys.readouterr().out


def test_embed_raw_features_are_unnormalised(tmp_path, bundle_dir, images):
    out = tmp_path / "raw.npy"
    assert main(["embed", str(bundle_dir), str(images), "-o", str(out), "--raw"]) == 0
    raw = np.load(out)
    unit = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    np.testing.assert_allclose(unit, load_bundle(bundle_dir).embeddings, atol=1e-5)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1)


def test_bad_files_are_skipped_with_reasons(tmp_path, bundle_dir, messy, capsys):
    out = tmp_path / "e.npy"
    assert main(["embed", str(bundle_dir), str(messy), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "broken.png: truncated" in err and "notes.txt: not an image" in err
    assert "2 of 10 files skipped" in err and ".DS_Store" not in err
    items = json.loads(items_path(out).read_text())
    assert len(items["paths"]) == 8 == len(np.load(out))
    assert {s["path"].split("/")[-1] for s in items["skipped"]} == {"broken.png", "notes.txt"}


def test_folder_without_images_is_an_error(tmp_path, bundle_dir, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "a.txt").write_text("x")
    assert main(["embed", str(bundle_dir), str(tmp_path / "empty"), "-o", str(tmp_path / "e")]) == 1
    assert (
        "holds no readable images: 1 of 1 files skipped (1 not an image)" in capsys.readouterr().err
    )


def test_query_finds_itself_first(bundle_dir, images, capsys):
    image = images / "square" / "square_0002.png"
    assert main(["query", str(bundle_dir), str(image), "-k", "3", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)["neighbours"]
    assert hits[0]["path"] == "square/square_0002.png"
    assert hits[0]["score"] == pytest.approx(1.0, abs=1e-5)
    assert len(hits) == 3 and hits[0]["score"] >= hits[1]["score"] >= hits[2]["score"]
    assert main(["query", str(bundle_dir), str(image), "-k", "2"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["rank", "score", "path"]
    assert table[1].split() == ["1", "1.0000", "square/square_0002.png"]


def test_query_of_an_unreadable_image(tmp_path, bundle_dir, capsys):
    (tmp_path / "x.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    assert main(["query", str(bundle_dir), str(tmp_path / "x.png")]) == 1
    assert "x.png: corrupt" in capsys.readouterr().err


def test_classify_csv_and_label_studio(tmp_path, bundle_dir, messy, capsys):
    out, ls = tmp_path / "pred.csv", tmp_path / "tasks.json"
    argv = [
        "classify",
        str(bundle_dir),
        str(messy),
        "-o",
        str(out),
        "--label-studio",
        str(ls),
        "--from-name",
        "shape",
    ]
    assert main(argv) == 0
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == ["path", "label", "confidence", "p_circle", "p_square"]
    assert [r["path"] for r in rows] == list(load_bundle(bundle_dir).paths)
    clf = load_bundle(bundle_dir).classifier
    ref = clf.probabilities(load_bundle(bundle_dir).embeddings)  # the documented formula
    got = np.array([[float(r["p_circle"]), float(r["p_square"])] for r in rows])
    np.testing.assert_allclose(got, ref, atol=1e-5)
    for r, p in zip(rows, ref):
        assert r["label"] == clf.classes[int(np.argmax(p))]
        assert float(r["confidence"]) == pytest.approx(p.max(), abs=1e-5)
    tasks = json.loads(ls.read_text())
    assert len(tasks) == 8
    pred = tasks[0]["predictions"][0]
    # the folder's own name leads: Label Studio's document root is taken to be its parent
    assert tasks[0]["data"]["image"] == f"/data/local-files/?d={messy.name}/circle/circle_0000.png"
    assert pred["result"][0] == {
        "from_name": "shape",
        "to_name": "image",
        "type": "choices",
        "value": {"choices": [rows[0]["label"]]},
    }
    assert pred["score"] == pytest.approx(float(rows[0]["confidence"]), abs=1e-5)


def test_label_studio_links_under_the_document_root(tmp_path, bundle_dir, images, capsys):
    ls = tmp_path / "tasks.json"
    argv = ["classify", str(bundle_dir), str(images), "-o", str(tmp_path / "p.csv")]
    argv += ["--label-studio", str(ls), "--document-root", str(images.parent.parent)]
    assert main(argv) == 0
    link = json.loads(ls.read_text())[0]["data"]["image"]
    assert link == f"/data/local-files/?d={images.parent.name}/{images.name}/circle/circle_0000.png"
    assert main([*argv[:-1], str(images)]) == 1  # the root itself cannot be a storage
    assert "only from a sub-folder of LOCAL_FILES_DOCUMENT_ROOT" in capsys.readouterr().err


def test_classify_without_classifier(tmp_path, unlabelled_bundle, images, capsys):
    argv = ["classify", str(unlabelled_bundle), str(images), "-o", str(tmp_path / "p.csv")]
    assert main(argv) == 1
    assert "has no classifier" in capsys.readouterr().err
    assert not (tmp_path / "p.csv").exists()


def test_bad_bundle_is_one_line(tmp_path, capsys):
    assert main(["info", str(tmp_path / "missing")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("sslstudio-tool: error:") and err.count("\n") == 1


def test_view_window(qapp, model, images):
    from sslstudio.tool.search import NeighbourIndex
    from sslstudio.tool.viewer import build_window, neighbours

    image = images / "circle" / "circle_0001.png"
    pixels, hits = neighbours(model, NeighbourIndex(model.bundle.embeddings), str(image), 4)
    hits.append((0, "../outside.png", 0.1))  # never opened: shown as a grey tile
    win = build_window(pixels, image.name, hits, str(images))
    from PySide6 import QtWidgets

    captions = [w.text() for w in win.findChildren(QtWidgets.QLabel, "caption")]
    assert captions[0] == "query\ncircle_0001.png"
    assert captions[1].startswith("#1  1.000\ncircle_0001.png")
    assert len(captions) == 6
    missing = [w for w in win.findChildren(QtWidgets.QLabel) if w.text() == "not found"]
    assert len(missing) == 1
    win.close()
