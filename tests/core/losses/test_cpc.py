import math

import pytest
import torch

from sslstudio.core.losses.cpc import CPCLoss


def test_perfect_predictions_are_found_among_all_patches():
    """Distinct one-hot patch embeddings, predictions equal to the targets: accuracy 1, loss ~0."""
    b, g = 2, 4
    z = torch.eye(b * g * g).T.reshape(b * g * g, b, g, g).permute(1, 0, 2, 3) * 20  # (B, D, G, G)
    preds = [torch.roll(z, shifts=-k, dims=2) for k in (1, 2)]  # pred at row r = z at row r + k
    loss, acc = CPCLoss(steps=2)(preds, z)
    assert acc.item() == 1.0 and loss.item() < 1e-6


def test_random_predictions_score_about_log_of_the_candidates():
    torch.manual_seed(0)
    z = torch.randn(4, 8, 5, 5) * 1e-3
    loss, _ = CPCLoss(steps=1)([torch.randn(4, 8, 5, 5)], z)
    assert loss.item() == pytest.approx(math.log(4 * 25), rel=1e-2)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        CPCLoss(steps=0)
    with pytest.raises(ValueError, match="rows ahead"):
        CPCLoss(steps=3)([torch.zeros(1, 2, 3, 3)] * 3, torch.zeros(1, 2, 3, 3))
