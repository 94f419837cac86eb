import dataclasses
import json

import pytest

from sslstudio.config import AugmentConfig, RunConfig, validate
from sslstudio.errors import ConfigError


def test_json_round_trip(tmp_path):
    cfg = RunConfig(
        data_root=str(tmp_path),
        image_size=48,
        augment=AugmentConfig(hue=0.05),
        method_options={"temperature": 0.3},
    )
    (tmp_path / "c.json").write_text(cfg.to_json())
    back = RunConfig.load(tmp_path / "c.json")
    assert back == cfg
    assert isinstance(back.augment, AugmentConfig)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"batch_size": 1}, "batch_size must be >= 2"),
        ({"image_size": 4}, "image_size must be >= 8"),
        ({"device": "tpu"}, "device must be one of"),
        ({"augment": AugmentConfig(crop_scale_min=0.9, crop_scale_max=0.5)}, "crop_scale_min"),
        ({"augment": AugmentConfig(hue=float("nan"))}, "augment.hue must be finite"),
        ({"cache_size": 16, "image_size": 32}, "cache_size"),
    ],
)
def test_bad_values_are_refused_with_the_field_named(tmp_path, change, message):
    cfg = dataclasses.replace(RunConfig(data_root=str(tmp_path)), **change)
    with pytest.raises(ConfigError, match=message):
        validate(cfg)


def test_missing_folder_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="is not a folder"):
        validate(RunConfig(data_root=str(tmp_path / "nope")))
    with pytest.raises(ConfigError, match="choose a folder"):
        validate(RunConfig())


def test_types_are_checked_on_load():
    with pytest.raises(ConfigError, match="batch_size must be a whole number"):
        RunConfig.from_dict({"batch_size": "64"})
    with pytest.raises(ConfigError, match="amp must be true or false"):
        RunConfig.from_dict({"amp": "false"})
    with pytest.raises(ConfigError, match="unknown config field"):
        RunConfig.from_dict({"batchsize": 64})
    with pytest.raises(ConfigError, match="newer"):
        RunConfig.from_dict({"version": 99})


def test_corrupt_config_file(tmp_path):
    p = tmp_path / "config.json"
    p.write_text("{not json")
    with pytest.raises(ConfigError, match="cannot read config"):
        RunConfig.load(p)
    p.write_text(json.dumps([1, 2]))
    with pytest.raises(ConfigError, match="JSON object"):
        RunConfig.load(p)
