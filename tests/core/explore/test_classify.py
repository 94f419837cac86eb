import numpy as np
import pytest

from sslstudio.core.explore import classify as cl
from sslstudio.core.explore.embedstore import run_embeddings
from sslstudio.errors import SSLStudioError


def _blobs(per_class=30, d=16, classes=3, seed=0, spread=0.4):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, d))
    y = np.repeat(np.arange(classes), per_class)
    x = centres[y] + spread * rng.normal(size=(len(y), d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), y


@pytest.mark.parametrize("kind", cl.KINDS)
def test_both_classifiers_separate_clear_clusters(kind):
    x, y = _blobs()
    model = cl.fit(kind, x[::3], y[::3], ["a", "b", "c"])
    probs = model.probabilities(x)
    assert probs.shape == (90, 3) and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert (probs.argmax(1) == y).mean() > 0.95
    assert cl.cross_validate(kind, x[::3], y[::3], ["a", "b", "c"]) > 0.9


def test_linear_probe_weights_classes_by_their_counts():
    # 40 labels of one class, 4 of the other: balanced weights still find the small class
    x, y = _blobs(per_class=40, classes=2, spread=0.8, seed=3)
    keep = np.r_[np.arange(40), np.arange(40, 44)]
    model = cl.fit("linear", x[keep], y[keep], ["big", "small"])
    pred = model.probabilities(x).argmax(1)
    assert (pred[40:] == 1).mean() > 0.7


def test_cross_validation_needs_two_labels_per_class_and_fit_needs_two_classes():
    x, y = _blobs(per_class=3)
    assert cl.cross_validate("linear", x[[0, 1, 3, 6]], y[[0, 1, 3, 6]], ["a", "b", "c"]) is None
    with pytest.raises(SSLStudioError, match="two classes"):
        cl.fit("linear", x[:3], y[:3], ["a", "b", "c"])
    with pytest.raises(ValueError):
        cl.fit("svm", x, y, ["a", "b", "c"])


def test_a_class_without_labels_is_never_predicted():
    x, y = _blobs(classes=3)
    labelled = y != 2
    model = cl.fit("linear", x[labelled], y[labelled], ["a", "b", "c"])
    assert (model.probabilities(x).argmax(1) != 2).all()


def test_predictions_suggest_the_least_certain_unlabelled_rows(tmp_path):
    probs = np.array([[0.9, 0.1], [0.55, 0.45], [0.5, 0.5], [0.7, 0.3]], np.float32)
    pred = cl.Predictions(probs, ["a", "b"])
    assert pred.suggest(exclude=np.array([2]), count=2).tolist() == [1, 3]
    pred.write_csv(tmp_path / "p.csv", ["w.png", "x.png", "y.png", "z.png"], {"y.png": "b"})
    lines = (tmp_path / "p.csv").read_text().splitlines()
    assert lines[0] == "path,label,confidence,user_label,p_a,p_b"
    assert lines[1] == "w.png,a,0.9000,,0.9000,0.1000" and lines[3].split(",")[3] == "b"


def test_label_set_round_trip_and_csv_import(tmp_path):
    labels = cl.LabelSet()
    labels.assign(["a/1.png", "a/2.png"], "tumour")
    labels.assign(["b/3.png"], "stroma")
    labels.assign(["a/2.png"], None)
    assert labels.counts() == {"tumour": 1, "stroma": 1}
    labels.save(tmp_path / "labels.json")
    again = cl.LabelSet.load(tmp_path / "labels.json")
    assert again == labels
    rows, y = again.rows(["b/3.png", "a/1.png", "c/9.png"])
    assert rows.tolist() == [0, 1] and [again.classes[i] for i in y] == ["stroma", "tumour"]
    (tmp_path / "l.csv").write_text(
        "path,label\n/data/x/a/1.png,tumour\nb/3.png,stroma\nnope.png,x\n"
    )
    imported, unmatched = cl.LabelSet.from_csv(tmp_path / "l.csv", ["a/1.png", "b/3.png"])
    assert imported.assigned == {"a/1.png": "tumour", "b/3.png": "stroma"} and unmatched == [
        "nope.png"
    ]
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(SSLStudioError, match="labels file"):
        cl.LabelSet.load(tmp_path / "bad.json")


def test_a_trained_run_classifies_its_folder_and_saves_the_probe(trained_run, tmp_path):
    from safetensors.numpy import load_file

    emb = run_embeddings(trained_run)
    labels = cl.LabelSet.from_subfolders(emb.paths, emb.labels, emb.classes)
    rows, y = labels.rows(emb.paths)
    model = cl.fit("linear", emb.unit()[rows], y, labels.classes)
    model.save(tmp_path / "explore", cv_accuracy=0.5, labelled=len(rows))
    w = load_file(str(tmp_path / "explore" / "classifier.safetensors"))
    assert w["weight"].shape == (2, emb.dim) and w["bias"].shape == (2,)
    probs = cl.Classifier("linear", labels.classes, w["weight"], w["bias"]).probabilities(
        emb.unit()
    )
    np.testing.assert_allclose(probs, model.probabilities(emb.unit()), rtol=1e-5)
