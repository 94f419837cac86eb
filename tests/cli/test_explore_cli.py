import csv
import json

import pytest

from sslstudio.cli.main import main
from tests.shapes import make_shapes_folder, tiny_config


@pytest.fixture(scope="module")
def run(tmp_path_factory, module_home):
    from sslstudio.core.train.trainer import train

    base = tmp_path_factory.mktemp("cli-explore")
    folder = make_shapes_folder(base / "shapes", per_class=8, size=24, shapes=("circle", "square"))
    for _ in train(tiny_config(folder, base / "run", max_steps=2, monitor_every=0)):
        pass
    return base / "run", folder


def test_neighbours_of_a_folder_image_start_with_itself(run, tmp_path, capsys):
    run_dir, folder = run
    query = sorted((folder / "circle").iterdir())[2]
    assert (
        main(["neighbors", str(run_dir), str(query), "-k", "4", "--json", str(tmp_path / "n.json")])
        == 0
    )
    out = json.loads((tmp_path / "n.json").read_text())
    assert out["neighbours"][0]["path"] == f"circle/{query.name}"
    assert out["neighbours"][0]["similarity"] == pytest.approx(1.0, abs=1e-5)
    assert len(out["neighbours"]) == 4 and "1.0000" in capsys.readouterr().out


def test_neighbours_of_an_outside_image_and_group_exclusion(run, tmp_path):
    run_dir, folder = run
    outside = tmp_path / "q.png"
    outside.write_bytes(sorted((folder / "square").iterdir())[0].read_bytes())
    assert (
        main(
            [
                "neighbours",
                str(run_dir),
                str(outside),
                "-k",
                "3",
                "--json",
                str(tmp_path / "o.json"),
            ]
        )
        == 0
    )
    out = json.loads((tmp_path / "o.json").read_text())
    # the same pixels as a folder image: that image is the nearest, at similarity 1
    assert out["neighbours"][0]["similarity"] == pytest.approx(1.0, abs=1e-5)
    query = sorted((folder / "circle").iterdir())[0]
    assert (
        main(
            [
                "neighbors",
                str(run_dir),
                str(query),
                "-k",
                "5",
                "--group",
                "folder",
                "--json",
                str(tmp_path / "g.json"),
            ]
        )
        == 0
    )
    hits = json.loads((tmp_path / "g.json").read_text())["neighbours"]
    assert hits and all(h["path"].startswith("square/") for h in hits)


def test_outliers_and_duplicates_listed(run, tmp_path, capsys):
    run_dir, _ = run
    assert (
        main(
            [
                "neighbors",
                str(run_dir),
                "--outliers",
                "3",
                "--duplicates",
                "0.9999",
                "--json",
                str(tmp_path / "x.json"),
            ]
        )
        == 0
    )
    out = json.loads((tmp_path / "x.json").read_text())
    assert len(out["outliers"]) == 3 and "duplicates" in out
    assert main(["neighbors", str(run_dir)]) == 1
    assert "query image" in capsys.readouterr().err


def test_classify_from_subfolders_writes_predictions_and_saves_the_probe(run, tmp_path, capsys):
    run_dir, _ = run
    out = tmp_path / "pred.csv"
    assert main(["classify", str(run_dir), "--from-subfolders", "-o", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 16 and {r["label"] for r in rows} <= {"circle", "square"}
    assert all(0.0 <= float(r["confidence"]) <= 1.0 for r in rows)
    assert "cross-validated accuracy" in capsys.readouterr().out
    meta = json.loads((run_dir / "explore" / "classifier.json").read_text())
    assert meta["classes"] == ["circle", "square"] and meta["labelled"] == 16


def test_classify_from_a_csv_and_without_labels(run, tmp_path, capsys):
    run_dir, folder = run
    (tmp_path / "l.csv").write_text(
        "path,label\n"
        + "".join(f"circle/{p.name},round\n" for p in sorted((folder / "circle").iterdir())[:2])
        + "".join(f"square/{p.name},boxy\n" for p in sorted((folder / "square").iterdir())[:2])
    )
    assert (
        main(
            [
                "classify",
                str(run_dir),
                "--labels",
                str(tmp_path / "l.csv"),
                "--kind",
                "knn",
                "-o",
                str(tmp_path / "p.csv"),
            ]
        )
        == 0
    )
    assert {r["label"] for r in csv.DictReader((tmp_path / "p.csv").open())} <= {"round", "boxy"}
    assert main(["classify", str(run_dir), "-o", str(tmp_path / "none.csv")]) == 1
    assert "no labelled images" in capsys.readouterr().err
