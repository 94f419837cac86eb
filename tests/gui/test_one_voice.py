"""The CLI, the window and the trainer speak with one voice: the same config refused with the
same message (``check_run_config``), the same sentence for the same event (``describe``)."""

from __future__ import annotations

import dataclasses
import re

import pytest

from sslstudio.cli import train as cli_train
from sslstudio.cli.main import main
from sslstudio.config import RunConfig
from sslstudio.core.events import describe
from sslstudio.core.train.trainer import train
from sslstudio.errors import ConfigError
from sslstudio.paths import sample_images_dir
from tests.core.test_events import ONE_OF_EACH

BAD = {
    "progressive resizing on a ViT": (
        ["--backbone", "vit_tiny", "--image-size", "32", "--progressive-from", "16"],
        {"backbone": "vit_tiny", "image_size": 32, "progressive_from": 16},
        "progressive resizing needs a convolutional backbone",
    ),
    "an unknown method option": (
        ["--method", "simclr", "--option", "wobble=3"],
        {"method": "simclr", "method_options": {"wobble": 3}},
        "unknown option(s) for simclr: wobble",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_the_cli_the_window_and_the_trainer_refuse_a_bad_config_alike(
    case, ready_window, capsys
) -> None:
    flags, fields, words = BAD[case]
    folder = str(sample_images_dir())
    cfg = RunConfig(data_root=folder, **fields)

    with pytest.raises(ConfigError) as refused:
        next(iter(train(cfg)))
    message = str(refused.value)
    assert words in message

    assert main(["train", folder, "--threads", "1", "--quiet", *flags]) != 0
    assert capsys.readouterr().err.strip() == f"sslstudio: error: {message}"

    w = ready_window
    w.config_model.set(dataclasses.replace(w.config_model.config, **fields))
    w.start_run()
    assert not w.controller.is_running()
    assert w.train_page.error_box.text() == message
    w.train_page.error_box.close()


def _cli_text(events, capsys) -> list[str]:
    bar = cli_train._Progress(quiet=False)
    bar.tty = False
    for ev in events:
        bar.show(ev)
    return capsys.readouterr().err.splitlines()


def _window_text(page, events) -> list[str]:
    page.log.clear()
    for ev in events:
        page.on_event(ev)
    # each log line starts with the time: "14:05:09  text"
    return [re.sub(r"^\d\d:\d\d:\d\d  ", "", x) for x in page.log.toPlainText().splitlines()]


def test_the_cli_and_the_window_print_the_same_text_for_the_same_event(window, capsys) -> None:
    said = [describe(ev) for ev in ONE_OF_EACH if describe(ev)]
    assert len(said) >= 8
    lines = [line for text in said for line in text.splitlines()]
    cli = _cli_text(ONE_OF_EACH, capsys)
    gui = _window_text(window.train_page, ONE_OF_EACH)
    assert [x for x in cli if x in lines] == lines  # the CLI adds its own hints around them
    assert [x for x in gui if x in lines] == lines
