"""init_blend: features from the trained weights blended with the run's own step-0 weights.

The run keeps its step-0 weights as checkpoint ``init``; every reader of features (embedding,
Explore, export) gets ``lerp(trained, init, share)``; training and resume keep the trained ones.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from sslstudio.core.explore.embed import load_method, random_init_method
from sslstudio.core.export.bundle import export_bundle
from sslstudio.core.train import checkpoints as ckpt
from sslstudio.core.train.runs import read_metrics
from sslstudio.errors import CheckpointError
from tests.core.test_export import make_trained_run


@pytest.fixture(scope="module")
def blended_run(tmp_path_factory, module_home):
    return make_trained_run(tmp_path_factory.mktemp("blend"), init_blend=0.5)


def _raw(run, name):
    state, _, _ = ckpt.load_checkpoint(run / "checkpoints" / name)
    return state


def test_the_run_keeps_its_step_zero_weights_and_features_are_blended(blended_run):
    init, final = _raw(blended_run, "init"), _raw(blended_run, "final")
    assert ckpt.read_meta(blended_run / "checkpoints" / "init")["step"] == 0
    cfg_method, cfg, _ = load_method(blended_run, which="init", device=torch.device("cpu"))
    step0 = random_init_method(cfg).state_dict()  # the seeded network the run started from
    for name, value in init.items():
        torch.testing.assert_close(value, step0[name])
    moved = [k for k, v in final.items() if v.is_floating_point() and not torch.equal(v, init[k])]
    assert moved  # training changed the weights
    method, _, _ = load_method(blended_run, which="final", device=torch.device("cpu"))
    got = method.state_dict()
    for name in moved:
        torch.testing.assert_close(got[name], (final[name] + init[name]) / 2)
    ints = [k for k, v in final.items() if not v.is_floating_point()]
    assert all(torch.equal(got[k], final[k]) for k in ints)  # batch counts stay trained
    # "latest" is the trained final step (resume reads it), never the step-0 copy
    assert ckpt.resolve(blended_run)[1].name == "final"


def test_the_advice_says_what_the_features_are(blended_run):
    done = [r for r in read_metrics(blended_run) if r.get("type") == "RunFinished"]
    assert done and "blended 50% with 50% of the untrained network" in done[-1]["advice"]


def test_the_bundle_holds_the_blended_features(blended_run, tmp_path):
    out = export_bundle(blended_run, tmp_path / "bundle")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["onnx"]["max_relative_error"] <= 1e-4  # checked against the blended model
    from safetensors.torch import load_file

    saved = load_file(str(out / "backbone.safetensors"))
    method, _, _ = load_method(blended_run, device=torch.device("cpu"))
    for name, value in method.backbone.state_dict().items():
        torch.testing.assert_close(saved[name], value)


def test_a_missing_init_checkpoint_is_a_clear_error(blended_run, tmp_path):
    copy = shutil.copytree(blended_run, tmp_path / "run")
    shutil.rmtree(copy / "checkpoints" / "init")
    with pytest.raises(CheckpointError, match="init_blend.*checkpoints/init is missing"):
        load_method(copy, device=torch.device("cpu"))


def test_off_by_default_writes_no_init(tmp_path, module_home):
    run = make_trained_run(tmp_path)
    assert not (run / "checkpoints" / "init").exists()


def test_the_last_probe_reads_the_blend_and_training_keeps_its_weights(tmp_path, module_home):
    """The final probe runs on the blended weights; the final checkpoint holds the trained
    ones, exactly as a run without the blend ends (the blend never feeds back into training)."""
    runs = {
        share: make_trained_run(tmp_path, name=f"b{share}", init_blend=share, monitor_every=2)
        for share in (0.0, 0.5)
    }
    plain, blended = (_raw(runs[s], "final") for s in (0.0, 0.5))
    for name, value in plain.items():
        torch.testing.assert_close(blended[name], value)
    probes = {
        s: [r for r in read_metrics(run) if r["kind"] == "monitor"][-1] for s, run in runs.items()
    }
    assert probes[0.0]["step"] == probes[0.5]["step"]
    assert probes[0.0]["std_sqrt_d"] != probes[0.5]["std_sqrt_d"]  # measured on other weights


def test_a_blended_he_run_recommends_its_final_step_and_its_verdict_does_not_decide(tmp_path):
    from sslstudio.core.transforms.presets import preset

    run = make_trained_run(
        tmp_path,
        init_blend=0.5,
        preset="histopathology",
        augment=preset("histopathology", 16),
        monitor_every=1,
        max_steps=4,
    )
    rows = read_metrics(run)
    checks = [r for r in rows if r.get("kind") == "monitor" and r["step"] > 0]
    assert checks and all(r["verdict_sign"] == 0 for r in checks)  # H&E: cannot tell
    assert all(r["verdict"].startswith("cannot tell from inside the run") for r in checks)
    done = [r for r in rows if r.get("type") == "RunFinished"][-1]
    assert done["recommended"].endswith("final") and "blended with the start" in done["advice"]
    assert ". Features use the trained weights" in done["advice"]  # one sentence after another
