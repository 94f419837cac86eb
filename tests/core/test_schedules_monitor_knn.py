import math

import numpy as np
import pytest
import torch

from sslstudio.core.maths.knn import knn_accuracy, knn_predict
from sslstudio.core.train.monitor import collapse_warning, rankme, std_sqrt_d
from sslstudio.core.train.schedules import cosine_schedule, scaled_lr


def test_cosine_schedule_warms_up_peaks_and_ends_exactly():
    s = cosine_schedule(1.0, 0.01, total_steps=100, warmup_steps=10)
    assert s.shape == (100,)
    assert s[0] == 0.0 and s[10] == pytest.approx(1.0)
    assert np.all(np.diff(s[:11]) > 0) and np.all(np.diff(s[10:]) <= 1e-12)
    assert s[-1] == pytest.approx(0.01)
    assert s[55] == pytest.approx(0.01 + 0.5 * 0.99 * (1 + math.cos(math.pi * 45 / 89)))


def test_schedule_edge_cases():
    assert cosine_schedule(0.5, 0.0, 1).tolist() == [0.5]
    assert len(cosine_schedule(0.5, 0.0, 5, warmup_steps=50)) == 5
    with pytest.raises(ValueError):
        cosine_schedule(1.0, 0.0, 0)
    assert scaled_lr(0.3, 512) == pytest.approx(0.6)


def test_collapse_metrics_tell_healthy_from_collapsed():
    torch.manual_seed(0)
    healthy = torch.randn(256, 128)
    assert std_sqrt_d(healthy) == pytest.approx(1.0, abs=0.05)
    assert rankme(healthy) > 80
    assert collapse_warning(std_sqrt_d(healthy), rankme(healthy), 256, 128) is None

    constant = torch.ones(256, 128) + 1e-6 * torch.randn(256, 128)
    assert std_sqrt_d(constant) < 0.01
    assert "complete collapse" in collapse_warning(std_sqrt_d(constant), rankme(constant), 256, 128)

    rank4 = torch.randn(256, 4) @ torch.randn(4, 128)
    assert rankme(rank4) <= 4.01
    msg = collapse_warning(std_sqrt_d(rank4), rankme(rank4), 256, 128)
    assert msg is not None and "dimensional collapse" in msg


def test_knn_on_separable_clusters_and_leave_one_out():
    torch.manual_seed(0)
    centres = torch.randn(3, 16) * 5
    y = torch.arange(3).repeat_interleave(20)
    x = centres[y] + torch.randn(60, 16) * 0.1
    assert knn_accuracy(x, y, x, y, k=5, exclude_self=True) == 1.0
    # leave-one-out must not see the query itself: a singleton class cannot be predicted
    y2 = y.clone()
    y2[0] = 3
    pred = knn_predict(x, y2, x[:1], 4, k=5, exclude_self=True)
    assert pred.item() == 0


def test_knn_weights_votes_by_similarity():
    mem = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 1.0], [0.05, 1.0]])
    labels = torch.tensor([0, 0, 1, 1, 1])
    # 2 very close class-0 items outweigh 3 far class-1 items at low temperature
    assert (
        knn_predict(mem, labels, torch.tensor([[1.0, 0.02]]), 2, k=5, temperature=0.05).item() == 0
    )
