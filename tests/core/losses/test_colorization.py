import pytest
import torch

from sslstudio.core.losses.colorization import ColorizationLoss, ab_gamut_bins, soft_targets
from sslstudio.core.transforms.lab import rgb_to_lab


def _lab(*rgb):
    return rgb_to_lab(torch.tensor(rgb, dtype=torch.float32).view(1, 3, 1, 1)).flatten()


def test_lab_of_known_colours():
    assert torch.allclose(_lab(1, 1, 1), torch.tensor([100.0, 0, 0]), atol=1e-3)
    assert torch.allclose(_lab(0, 0, 0), torch.zeros(3), atol=1e-3)
    # sRGB red, D65 (e.g. the CIE/sRGB reference tables): L 53.24, a 80.09, b 67.20
    assert torch.allclose(_lab(1, 0, 0), torch.tensor([53.24, 80.09, 67.20]), atol=0.02)
    grey = _lab(0.5, 0.5, 0.5)
    assert grey[1:].abs().max() < 1e-3 and 50 < grey[0] < 56


def test_ab_bins_cover_the_gamut():
    bins = ab_gamut_bins(10.0)
    assert 200 < bins.shape[0] < 400  # the paper's own gamut estimate has 313
    assert torch.equal(bins, torch.round(bins / 10) * 10)  # on the 10-unit grid
    rgb = torch.rand(1, 3, 4000, 1, generator=torch.Generator().manual_seed(0))
    ab = rgb_to_lab(rgb)[0, 1:, :, 0].T  # (4000, 2) colours off the lattice the bins came from
    nearest = torch.cdist(ab, bins).min(dim=1).values
    assert nearest.max() <= 5 * 2**0.5 + 1e-3  # every colour falls inside some bin


def test_soft_encoding_weights_the_nearest_bins():
    bins = ab_gamut_bins(10.0)
    idx, w = soft_targets(torch.tensor([[21.0, -9.0]]), bins, neighbours=5, sigma=5.0)
    assert idx.shape == w.shape == (1, 5)
    assert w.sum().item() == pytest.approx(1.0)
    assert torch.equal(bins[idx[0, 0]], torch.tensor([20.0, -10.0])) and w[0, 0] == w.max()


def test_confident_right_answer_has_lower_loss():
    loss = ColorizationLoss()
    ab = torch.tensor([20.0, -10.0]).view(1, 2, 1, 1).expand(1, 2, 2, 2)
    right = torch.zeros(1, loss.num_bins, 2, 2)
    right[:, ((loss.bins - torch.tensor([20.0, -10.0])).norm(dim=1) < 1).nonzero()[0, 0]] = 10
    assert loss(right, ab) < loss(torch.zeros_like(right), ab)


@pytest.mark.parametrize("kw", [{"sigma": 0}, {"neighbours": 0}, {"grid": -1}])
def test_bad_hyper_parameters_are_refused(kw):
    with pytest.raises(ValueError):
        ColorizationLoss(**kw)
