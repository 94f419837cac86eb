"""The JSON settings store: typed reads, round trips, and recovery from a damaged file."""

from __future__ import annotations

import json
from pathlib import Path

from sslstudio.gui.settings import MAX_RECENT, Settings, coerce
from sslstudio.paths import settings_path


def test_default_path_follows_sslstudio_home(sslstudio_home: Path) -> None:
    s = Settings()
    s.set("x", 1)
    assert s.path == settings_path() and s.path.is_relative_to(sslstudio_home)
    assert json.loads(s.path.read_text())["x"] == 1


def test_round_trip_keeps_types(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    s = Settings(path)
    s.update(
        {"flag": False, "n": 7, "lr": 0.25, "name": "tiny", "items": ["a", "b"], "d": {"k": 1}}
    )
    again = Settings(path)
    assert again.get("flag", True) is False
    assert again.get("n", 0) == 7 and isinstance(again.get("n", 0), int)
    assert again.get("lr", 0.0) == 0.25
    assert again.get("name", "") == "tiny"
    assert again.get("items", []) == ["a", "b"]
    assert again.get("d", {}) == {"k": 1}
    assert again.get("missing", 3) == 3


def test_typed_get_never_reads_the_string_false_as_true(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text(
        json.dumps({"a": "false", "b": "True", "c": "0", "d": 1, "e": "maybe", "f": [1]})
    )
    s = Settings(path)
    assert s.get("a", True) is False
    assert s.get("b", False) is True
    assert s.get("c", True) is False
    assert s.get("d", False) is True
    assert s.get("e", True) is True  # unusable: the default
    assert s.get("f", False) is False


def test_coerce_numbers_and_mismatches() -> None:
    assert coerce("12", 0) == 12
    assert coerce(3.0, 0) == 3
    assert coerce(3.5, 0) == 0  # not a whole number
    assert coerce(True, 0) == 0  # a bool is not a count
    assert coerce("2.5", 0.0) == 2.5
    assert coerce(None, "x") == "x"
    assert coerce(["a"], ()) == ("a",)


def test_corrupt_file_is_moved_aside_and_defaults_used(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text("{ this is not json")
    s = Settings(path)
    assert s.get("last_folder", "default") == "default"
    assert s.moved_aside is not None and s.moved_aside.read_text() == "{ this is not json"
    assert not path.exists()
    s.set("last_folder", "/x")  # and the store works again
    assert Settings(path).get("last_folder", "") == "/x"


def test_a_json_list_is_damage_too(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text("[1, 2]")
    s = Settings(path)
    assert s.moved_aside is not None and s.get("x", 5) == 5


def test_recent_folders_most_recent_first_without_duplicates(tmp_path: Path) -> None:
    s = Settings(tmp_path / "s.json")
    for i in range(MAX_RECENT + 3):
        s.add_recent_folder(f"/f{i}")
    s.add_recent_folder("/f5")
    recent = Settings(tmp_path / "s.json").recent_folders()
    assert recent[0] == "/f5" and len(recent) == MAX_RECENT and len(set(recent)) == MAX_RECENT


def test_unwritable_location_is_not_fatal(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    s = Settings(blocker / "settings.json")  # its parent is a file: saving must fail quietly
    s.set("x", 1)
    assert s.get("x", 0) == 1
