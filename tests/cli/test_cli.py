import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from sslstudio.cli.main import main
from sslstudio.core.train.runs import read_metrics
from tests.shapes import make_shapes_folder

TINY = [
    "--backbone",
    "tiny_cnn",
    "--image-size",
    "16",
    "--batch-size",
    "8",
    "--threads",
    "1",
    "--quiet",
]


def test_train_embed_eval_end_to_end(tiny_folder, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", str(tiny_folder), *TINY, "--epochs", "2", "--out", str(run)]) == 0
    assert (run / "checkpoints" / "final" / "model.safetensors").is_file()
    out = tmp_path / "feats.npz"
    assert main(["embed", str(run), str(tiny_folder), "-o", str(out)]) == 0
    with np.load(out, allow_pickle=False) as z:
        assert z["features"].shape == (24, 128) and z["features"].dtype == np.float32
        assert list(z["classes"]) == ["circle", "square"] and z["labels"].shape == (24,)
        assert str(z["paths"][0]).startswith("circle/")
    capsys.readouterr()
    res = tmp_path / "eval.json"
    assert main(["eval", str(run), "--train", str(tiny_folder), "--json", str(res)]) == 0
    printed = capsys.readouterr().out
    assert "trained (final)" in printed and "random init" in printed
    result = json.loads(res.read_text())
    assert 0 <= result["trained"] <= 1 and 0 <= result["random_init"] <= 1


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train"], "train needs a FOLDER"),
        (["train", "/no/such/folder"], "is not a folder"),
        (["train", "{folder}", "--method", "nope"], "unknown method 'nope'"),
        (["train", "{folder}", "--backbone", "vgg99"], "unknown backbone 'vgg99'"),
        (["train", "{folder}", "--batch-size", "1"], "batch_size must be >= 2"),
        (["train", "{folder}", "--option", "temperature=-2"], "temperature"),
        (["train", "{folder}", "--option", "colour"], "KEY=VALUE"),
        (["train", "{folder}", "--option", "wobble=3"], "unknown option"),
        (["train", "--resume", "{tmp}"], "not a run folder"),
        (["train", "--resume", "{tmp}", "--epochs", "300"], "--epochs would be ignored"),
        (["train", "{folder}", "--resume", "{tmp}", "--lr", "1"], "FOLDER, --lr would be"),
        (["embed", "{tmp}", "{folder}", "-o", "x.npz"], "not a run folder"),
        (["scan", "/no/such/folder"], "no/such/folder"),
    ],
)
def test_bad_input_gives_one_clear_line_and_nonzero_exit(
    argv, message, tiny_folder, tmp_path, capsys
):
    argv = [a.format(folder=tiny_folder, tmp=tmp_path) for a in argv]
    code = main(argv)
    err = capsys.readouterr().err
    assert code != 0
    assert message in err and "Traceback" not in err
    assert err.startswith("sslstudio: error:")


def test_argparse_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--image-size", "big"])
    assert exc.value.code == 2
    assert "invalid int value" in capsys.readouterr().err


def test_scan_prints_summary_and_reasons(tiny_folder, capsys):
    (tiny_folder / "broken.png").write_text("not really a png")
    assert main(["scan", str(tiny_folder)]) == 0
    out = capsys.readouterr().out
    assert "24 images" in out and "broken.png" in out and "not an image" in out


def test_methods_lists_each_with_its_defaults_and_the_papers_recipe(capsys):
    from sslstudio.core.methods import METHODS

    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    assert all(f"{name}  (" in out for name in METHODS)
    assert "lr 0.00075 per 256 images, weight decay 0.05" in out  # MAE's own defaults
    assert out.count("at scale the paper uses:") == len(METHODS)  # every method has one


def _spawn(args, home):
    env = {**os.environ, "SSLSTUDIO_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "sslstudio", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _wait_for(pred, timeout=120.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def medium_folder(tmp_path):
    return make_shapes_folder(
        tmp_path / "medium", per_class=40, size=24, shapes=("circle", "square")
    )


@pytest.mark.slow
def test_ctrl_c_checkpoints_prints_resume_and_exits_130(medium_folder, tmp_path, isolated_home):
    run = tmp_path / "run"
    proc = _spawn(
        ["train", str(medium_folder), *TINY, "--epochs", "500", "--out", str(run)], isolated_home
    )
    assert _wait_for(lambda: sum(r["kind"] == "step" for r in read_metrics(run)) >= 2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert f"resume with: sslstudio train --resume {run}" in err
    stopped = [r for r in read_metrics(run) if r["kind"] == "stopped"]
    assert len(stopped) == 1
    assert (run / "checkpoints" / f"step_{stopped[0]['step']:07d}" / "model.safetensors").is_file()


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_finishes(medium_folder, tmp_path, isolated_home):
    run = tmp_path / "run"
    args = [
        "train",
        str(medium_folder),
        *TINY,
        "--epochs",
        "3",
        "--checkpoint-every",
        "5",
        "--out",
        str(run),
    ]
    proc = _spawn(args, isolated_home)
    assert _wait_for(
        lambda: any(p.name.startswith("step_") for p in (run / "checkpoints").glob("*"))
    )
    assert _wait_for(lambda: sum(r["kind"] == "step" for r in read_metrics(run)) >= 7)
    proc.kill()
    proc.wait(timeout=30)
    assert not (run / "checkpoints" / "final").exists()
    done = _spawn(["train", "--resume", str(run), "--quiet"], isolated_home)
    _, err = done.communicate(timeout=300)
    assert done.returncode == 0, err
    steps = [r["step"] for r in read_metrics(run) if r["kind"] == "step"]
    assert steps == list(range(30))  # 80 images / batch 8 * 3 epochs, no gaps, no duplicates
    assert (Path(run) / "checkpoints" / "final").is_dir()


def test_a_method_trains_with_its_own_optimiser_defaults_unless_flags_say_otherwise():
    from sslstudio.cli.main import build_parser, config_from_args

    parse = build_parser().parse_args
    mae = config_from_args(
        parse(["train", "/tmp", "--method", "mae", "--backbone", "vit_tiny"])
    ).optim
    assert (mae.optimizer, mae.lr, mae.weight_decay) == ("adamw", 7.5e-4, 0.05)
    simclr = config_from_args(parse(["train", "/tmp"])).optim
    assert (simclr.optimizer, simclr.lr, simclr.weight_decay) == ("adamw", 2e-3, 1e-4)
    mine = config_from_args(
        parse(["train", "/tmp", "--method", "mae", "--lr", "0.01", "--optimizer", "sgd"])
    ).optim
    assert (mine.optimizer, mine.lr, mine.weight_decay) == ("sgd", 0.01, 0.05)


def test_slide_tiling_flags_reach_the_scan_options():
    from sslstudio.cli.main import build_parser, config_from_args
    from sslstudio.imaging.slides import SlideOptions

    args = ["train", "/tmp", "--tile-px", "128", "--tile-mpp", "1", "--tile-tissue", "0.8"]
    cfg = config_from_args(build_parser().parse_args(args))
    assert SlideOptions.of(cfg) == SlideOptions(128, 1.0, 0.8)
    assert SlideOptions.of(config_from_args(build_parser().parse_args(["train", "/tmp"]))) == (
        SlideOptions()
    )


def test_a_check_folder_is_measured_and_said(tiny_folder, tmp_path, capsys):
    """``--check-folder``: every probe after step 0 says, in words, how the features do on the
    check images beside random init; a check folder the run cannot use is one clear line."""
    new = make_shapes_folder(
        tmp_path / "new", per_class=5, size=24, seed=9, shapes=("circle", "square")
    )
    run = tmp_path / "run"
    argv = ["train", str(tiny_folder), *TINY[:-1], "--epochs", "2", "--monitor-every", "2"]
    assert main([*argv, "--check-folder", str(new), "--out", str(run)]) == 0
    err = capsys.readouterr().err
    assert "checking on 10 labelled image(s) of the check folder (circle, square)" in err
    assert "on your 10 check images from other slides" in err
    probes = [r for r in read_metrics(run) if r.get("type") == "MonitorLogged"]
    assert probes[0]["check_n"] == 10 and probes[-1]["check_ref"] == probes[0]["check_top1"]
    assert json.loads((run / "config.json").read_text())["check_folder"] == str(new)
    code = main(
        [*argv, "--check-folder", str(tiny_folder / "circle"), "--out", str(tmp_path / "r2")]
    )
    err = capsys.readouterr().err
    assert code != 0 and "lies inside the training folder" in err and "Traceback" not in err


def test_a_finished_run_trains_further_as_a_new_run_from_its_weights(tiny_folder, tmp_path, capsys):
    """What the --resume refusal points to: --weights RUN/checkpoints/final/model.safetensors
    starts a new run whose backbone is the finished run's, and --resume with --epochs is refused
    before anything is written."""
    import dataclasses

    from safetensors.torch import load_file

    from sslstudio.core.explore.embed import random_init_method
    from sslstudio.core.train.checkpoints import load_checkpoint
    from sslstudio.core.train.runs import load_run_config

    first, second = tmp_path / "first", tmp_path / "second"
    assert main(["train", str(tiny_folder), *TINY, "--max-steps", "2", "--out", str(first)]) == 0
    weights = first / "checkpoints" / "final" / "model.safetensors"
    capsys.readouterr()
    assert main(["train", "--resume", str(first), "--epochs", "9"]) != 0
    assert str(weights) in capsys.readouterr().err
    assert sorted(p.name for p in (first / "checkpoints").iterdir()) == ["final"]
    args = [str(tiny_folder), *TINY, "--max-steps", "1", "--checkpoint-every", "1"]
    assert main(["train", *args, "--weights", str(weights), "--out", str(second)]) == 0
    trained = load_file(str(weights))
    state, _, _ = load_checkpoint(second / "checkpoints" / "final")
    seed_only = dataclasses.replace(load_run_config(second), weights="")
    fresh = random_init_method(seed_only).state_dict()
    body = [k for k in trained if k.startswith("backbone.body.") and k.endswith(".weight")]
    assert body

    def apart(other) -> float:  # noqa: ANN001
        return sum(float((other[k].float() - trained[k].float()).norm()) for k in body)

    # one step from the finished run's weights, not from the seed's random start
    assert apart(state) < 0.2 * apart(fresh)
