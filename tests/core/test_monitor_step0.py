"""The health check does not call an untrained network collapsed: step 0 is the reference."""

import numpy as np
import torch

from sslstudio.core.train.monitor import run_probe


class Flat(torch.nn.Module):
    """Every image to the same point: what the collapse warning is for."""

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ones(x.shape[0], 8)


class Blank:
    def batch(self, idx: np.ndarray) -> np.ndarray:
        return np.zeros((len(idx), 16, 16, 3), np.uint8)


def test_no_collapse_warning_at_step_0_but_later() -> None:
    rows = np.arange(8)
    first = run_probe(Flat(), Blank(), rows, None, 16, "cpu", step=0)
    later = run_probe(Flat(), Blank(), rows, None, 16, "cpu", step=5)
    assert first.std_sqrt_d < 0.1 and first.warning is None
    assert later.warning is not None and "collapse" in later.warning
