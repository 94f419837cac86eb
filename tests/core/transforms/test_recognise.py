"""The folder recogniser: H&E, fluorescence, greyscale and photos told apart from their pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sslstudio.core.transforms.recognise import (
    recognise,
    recognise_paths,
    sample_indices,
)
from sslstudio.imaging.decode import decode_resized

DATA = Path("/work/shared/data")
rng = np.random.default_rng(0)


def he_tile() -> np.ndarray:
    """Eosin-pink stroma with haematoxylin-purple nuclei and a little white background."""
    a = np.empty((64, 64, 3), np.float32)
    a[:] = (232, 150, 200)
    for _ in range(30):
        y, x = rng.integers(0, 60, 2)
        a[y : y + 4, x : x + 4] = (110, 60, 160)
    a[:8, :8] = 245
    return np.clip(a + rng.normal(0, 6, a.shape), 0, 255).astype(np.uint8)


def photo() -> np.ndarray:
    """Blue sky over green grass with a brown object: no stain colours."""
    a = np.empty((64, 64, 3), np.float32)
    a[:32] = (110, 160, 230)
    a[32:] = (70, 150, 60)
    a[24:44, 20:40] = (140, 100, 60)
    return np.clip(a + rng.normal(0, 10, a.shape), 0, 255).astype(np.uint8)


def fluorescence() -> np.ndarray:
    a = np.full((64, 64, 3), 8, np.uint8)
    for _ in range(4):
        y, x = rng.integers(0, 54, 2)
        a[y : y + 10, x : x + 10, 1] = 210
        a[y + 3 : y + 7, x + 3 : x + 7, 2] = 240
    return a


def grey() -> np.ndarray:
    g = rng.integers(50, 240, (64, 64), dtype=np.uint8)
    return np.stack([g, g, g], axis=-1)


@pytest.mark.parametrize(
    ("make", "kind", "preset", "words"),
    [
        (he_tile, "histopathology", "histopathology", "pink and purple"),
        (photo, "natural", "natural", "photos"),
        (fluorescence, "microscopy", "microscopy", "fluorescence"),
        (grey, "greyscale", "microscopy", "no colour"),
    ],
)
def test_each_kind_is_recognised_with_a_reason(make, kind, preset, words) -> None:
    found = recognise([make() for _ in range(32)])
    assert (found.kind, found.preset) == (kind, preset)
    assert words in found.reason and "32" in found.reason and "\n" not in found.reason


def test_a_mixed_folder_follows_the_majority() -> None:
    assert recognise([he_tile()] * 20 + [photo()] * 12).kind == "histopathology"
    assert recognise([he_tile()] * 12 + [photo()] * 20).kind == "natural"


def test_nothing_readable_falls_back_to_the_general_preset(tmp_path: Path) -> None:
    (tmp_path / "bad.png").write_bytes(b"not an image")
    found = recognise_paths([str(tmp_path / "bad.png")], lambda p: decode_resized(p, 64))
    assert found.preset == "natural" and "No image could be read" in found.reason


def test_the_sample_spans_the_folder_and_is_the_same_each_time() -> None:
    assert sample_indices(10) == list(range(10))
    idx = sample_indices(1000)
    assert len(idx) == 32 and idx[0] == 0 and idx[-1] == 999 and idx == sample_indices(1000)


@pytest.mark.parametrize(
    ("folder", "kind"),
    [
        ("kather2016-sample", "histopathology"),
        ("crc-he-subset", "histopathology"),
        ("crc-he-shifted", "histopathology"),
        ("cifar10-subset", "natural"),
    ],
)
def test_the_measured_folders(folder: str, kind: str) -> None:
    root = DATA / folder
    if not root.is_dir():
        pytest.skip(f"{root} is not on this machine")
    paths = sorted(str(p) for p in root.rglob("*") if p.suffix.lower() in (".jpg", ".png", ".tif"))
    assert recognise_paths(paths, lambda p: decode_resized(p, 64)).kind == kind
