"""The per-tile stain normalisation's maths: Lab conversion and Reinhard's output statistics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sslstudio.core.transforms.lab import rgb_to_lab as torch_rgb_to_lab
from sslstudio.imaging import stain


def he_tiles(n: int = 4, side: int = 32, seed: int = 0) -> np.ndarray:
    """Pink-and-purple tiles with structure: nuclei (dark purple) blobs on eosin (pink)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:side, :side]
    out = np.empty((n, side, side, 3), np.uint8)
    for i in range(n):
        base = np.array([230, 160, 200], float) + rng.normal(0, 8, 3)
        img = np.broadcast_to(base, (side, side, 3)).copy()
        for _ in range(6):
            cy, cx, r = rng.integers(0, side, 2).tolist() + [rng.integers(2, 6)]
            blob = (yy - cy) ** 2 + (xx - cx) ** 2 < r**2
            img[blob] = np.array([110, 60, 150]) + rng.normal(0, 10, 3)
        out[i] = np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)
    return out


def test_lab_known_values():
    rgb = np.array([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    lab = stain.rgb_to_lab(rgb)
    np.testing.assert_allclose(lab[0], [100, 0, 0], atol=0.01)
    np.testing.assert_allclose(lab[1], [0, 0, 0], atol=0.01)
    np.testing.assert_allclose(lab[2], [53.24, 80.09, 67.20], atol=0.02)  # CIE Lab of sRGB red


def test_lab_round_trip_and_agrees_with_the_torch_version():
    rgb = np.random.default_rng(1).random((500, 3))
    np.testing.assert_allclose(stain.lab_to_rgb(stain.rgb_to_lab(rgb)), rgb, atol=1e-9)
    img = np.random.default_rng(2).random((2, 8, 8, 3)).astype(np.float32)
    ours = stain.rgb_to_lab(img)
    theirs = torch_rgb_to_lab(torch.from_numpy(img).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
    np.testing.assert_allclose(ours, theirs.numpy(), atol=1e-3)


def test_reinhard_output_has_the_target_statistics():
    out = stain.reinhard(he_tiles())
    assert out.dtype == np.uint8 and out.shape == (4, 32, 32, 3)
    lab = stain.rgb_to_lab(out / 255.0)
    # uint8 rounding and gamut clipping move them a little
    np.testing.assert_allclose(lab.mean((1, 2)), np.tile(stain.REINHARD_MEAN, (4, 1)), atol=0.6)
    np.testing.assert_allclose(lab.std((1, 2)), np.tile(stain.REINHARD_STD, (4, 1)), atol=0.6)


def test_reinhard_removes_a_slide_colour_shift():
    tiles = he_tiles(2)
    lab = stain.rgb_to_lab(tiles / 255.0)
    # another day's stain: lighter, bluer, less contrast in a and b, all inside the sRGB gamut
    shifted_lab = lab * [0.9, 0.8, 0.8] + [8.0, -4.0, -3.0]
    shifted = np.rint(stain.lab_to_rgb(shifted_lab) * 255).astype(np.uint8)
    assert np.abs(shifted.astype(int) - tiles).mean() > 8  # a visible shift before
    a, b = stain.reinhard(tiles).astype(int), stain.reinhard(shifted).astype(int)
    assert np.abs(a - b).mean() < 2.0  # the same tile after


def test_reinhard_flat_tile_single_tile_and_unknown_kind():
    flat = np.full((16, 16, 3), 200, np.uint8)
    out = stain.normalise_tiles(flat, "reinhard")
    assert out.shape == flat.shape
    lab = stain.rgb_to_lab(out / 255.0)
    np.testing.assert_allclose(lab.mean((0, 1)), stain.REINHARD_MEAN, atol=1.0)
    assert stain.normalise_tiles(flat, "none") is flat
    with pytest.raises(ValueError, match="reinhard"):
        stain.normalise_tiles(flat, "macenko")
