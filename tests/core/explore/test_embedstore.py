import threading

import numpy as np
import pytest

from sslstudio.core.explore import embedstore
from sslstudio.core.explore.embed import EmbeddingCancelled, embed_folder, load_method
from sslstudio.core.train.runs import load_run_config


def test_embeddings_are_stored_once_and_match_a_direct_embedding(trained_run, monkeypatch):
    calls = []
    emb = embedstore.run_embeddings(trained_run, progress=lambda *a: calls.append(a))
    assert (
        len(emb) == 20
        and emb.features.shape == (20, emb.dim)
        and emb.classes == ["circle", "square"]
    )
    assert isinstance(emb.features, np.memmap) and emb.labels.tolist() == [0] * 10 + [1] * 10
    assert {c[0] for c in calls} >= {"scan", "embed"}
    method, cfg, _ = load_method(trained_run)
    direct = embed_folder(method, cfg.data_root, cfg.image_size)
    assert direct.paths == emb.paths
    np.testing.assert_allclose(emb.features, direct.features, rtol=1e-5, atol=1e-6)
    unit = emb.unit()
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, atol=1e-5)

    # the second call reuses the stored set: the network is never loaded again
    monkeypatch.setattr(
        "sslstudio.core.explore.embed.load_method", lambda *a, **k: pytest.fail("recomputed")
    )
    again = embedstore.run_embeddings(trained_run)
    assert again.key == emb.key and again.location == emb.location


def test_a_changed_folder_or_other_checkpoint_gets_new_embeddings(trained_run, tmp_path):
    first = embedstore.run_embeddings(trained_run)
    cfg = load_run_config(trained_run)
    other = embedstore.run_embeddings(
        trained_run, checkpoint=trained_run / "checkpoints" / "step_0000002"
    )
    assert other.key != first.key and not np.allclose(other.features, first.features)
    import shutil
    from pathlib import Path

    copy = tmp_path / "copy"
    shutil.copytree(cfg.data_root, copy)
    (copy / "circle" / sorted(p.name for p in (copy / "circle").iterdir())[0]).unlink()
    fewer = embedstore.run_embeddings(trained_run, folder=copy)
    assert len(fewer) == 19 and fewer.key != first.key and Path(fewer.root) == copy


def test_float16_storage_and_a_damaged_set_is_recomputed(trained_run):
    half = embedstore.run_embeddings(trained_run, dtype="float16")
    assert half.features.dtype == np.float16
    (half.location / "features.npy").write_bytes(b"garbage")
    again = embedstore.run_embeddings(trained_run, dtype="float16")
    assert again.features.dtype == np.float16 and again.features.shape == half.features.shape


def test_cancel_stores_nothing(trained_run):
    stop = threading.Event()
    stop.set()
    before = set(embedstore.store_dir(trained_run).glob("*"))
    with pytest.raises(EmbeddingCancelled):
        embedstore.run_embeddings(
            trained_run, dtype="float16", checkpoint="step_0000002", cancel=stop
        )
    assert set(embedstore.store_dir(trained_run).glob("*")) == before


def test_a_run_without_checkpoints_says_so(tmp_path, tiny_folder):
    from sslstudio.errors import CheckpointError
    from tests.shapes import tiny_config

    run = tmp_path / "empty"
    run.mkdir()
    (run / "config.json").write_text(tiny_config(tiny_folder).to_json())
    with pytest.raises(CheckpointError, match="no usable checkpoint"):
        embedstore.run_embeddings(run)
