"""DINO: self-distillation with no labels, a centred and sharpened teacher.

"we apply a centering and sharpening of the momentum teacher outputs to avoid collapse [...]
centering prevents one dimension to dominate but encourages collapse to the uniform
distribution, while the sharpening has the opposite effect." The student matches the teacher's
distribution over K output dimensions; every student view is compared with every teacher view
(the teacher sees only the global ones) except itself.

- [0] DINO, Caron et al. 2021, https://arxiv.org/abs/2104.14294 (sec. 3.1, Algorithm 1)
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn


def teacher_probs(teacher_out: Tensor, center: Tensor, temperature: float) -> Tensor:
    """Centred, sharpened teacher distribution: ``softmax((t - c) / τ_t)``, rows ``(B, K)``."""
    return torch.softmax((teacher_out.float() - center) / temperature, dim=-1)


def cross_view_entropy(student_log_probs: list[Tensor], teacher: list[Tensor]) -> Tensor:
    """Mean of ``-sum(q_t log p_s)`` over (teacher view t, student view s != t) pairs.

    Args:
        student_log_probs: per view ``(B, K)`` log-probabilities, the teacher's views first.
        teacher: per global view ``(B, K)`` probabilities.
    """
    total, pairs = student_log_probs[0].new_zeros(()), 0
    for t, q in enumerate(teacher):
        for s, log_p in enumerate(student_log_probs):
            if s != t:  # a view is never its own target
                total = total - (q * log_p).sum(dim=-1).mean()
                pairs += 1
    return total / pairs


def updated_center(
    center: Tensor,
    teacher_out: Tensor,
    momentum: float,
    average: Callable[[Tensor], Tensor] | None = None,
) -> Tensor:
    """``m c + (1 - m) mean(teacher_out)``: the EMA of the teacher's batch mean ``(1, K)``;
    ``average`` (under ``--distributed``) makes this rank's mean that of every rank's rows."""
    mean = teacher_out.float().mean(dim=0, keepdim=True)
    if average is not None:  # equal shares on every rank: the mean of means is the global one
        mean = average(mean)
    return center * momentum + mean * (1 - momentum)


class DINOLoss(nn.Module):
    """Cross-entropy between student and centred/sharpened teacher outputs; owns the centre.

    Args:
        out_dim: K, the head's output width.
        student_temp: τ_s (paper: 0.1).
        center_momentum: m of the centre's EMA (paper: 0.9).

    Raises:
        ValueError: for a non-positive width or temperature, or a momentum outside [0, 1).
    """

    def __init__(
        self, out_dim: int, student_temp: float = 0.1, center_momentum: float = 0.9
    ) -> None:
        super().__init__()
        if out_dim < 1:
            raise ValueError(f"out_dim must be >= 1, got {out_dim}")
        if student_temp <= 0:
            raise ValueError(f"student_temp must be > 0, got {student_temp}")
        if not 0 <= center_momentum < 1:
            raise ValueError(f"center_momentum must be in [0, 1), got {center_momentum}")
        self.student_temp, self.center_momentum = student_temp, center_momentum
        self.register_buffer("center", torch.zeros(1, out_dim))  # checkpointed: resume is exact

    def forward(
        self,
        student_out: list[Tensor],
        teacher_out: list[Tensor],
        teacher_temp: float,
        average: Callable[[Tensor], Tensor] | None = None,
    ) -> Tensor:
        """Args:
            student_out: per view ``(B, K)`` student head outputs, global views first.
            teacher_out: per global view ``(B, K)`` teacher head outputs (no gradient).
            teacher_temp: τ_t of this step (warmed up from 0.04 to 0.07 in the paper).
            average: the mean over ranks, under ``--distributed``: the centre follows the
                global batch's teacher outputs, the same on every rank.

        Returns the loss; updates the centre with this batch's teacher outputs afterwards.
        """
        if teacher_temp <= 0:
            raise ValueError(f"teacher_temp must be > 0, got {teacher_temp}")
        log_p = [torch.log_softmax(s.float() / self.student_temp, dim=-1) for s in student_out]
        q = [teacher_probs(t.detach(), self.center, teacher_temp) for t in teacher_out]
        loss = cross_view_entropy(log_p, q)
        with torch.no_grad():
            batch = torch.cat(teacher_out).detach()  # (n_global * B, K)
            self.center.copy_(updated_center(self.center, batch, self.center_momentum, average))
        return loss
