"""Optimizers: SGD, AdamW, and LARS for large-batch contrastive training.

Biases and normalisation parameters get no weight decay and no LARS adaptation (SimCLR,
appendix B.1; BYOL, appendix C).
"""

from __future__ import annotations

import torch
from torch import nn

from sslstudio.config import OptimConfig


class LARS(torch.optim.Optimizer):
    """Layer-wise adaptive rate scaling (You et al. 2017, https://arxiv.org/abs/1708.03888).

    The update of each weight tensor is scaled by ``eta * ||w|| / ||g + wd * w||``. Groups with
    ``lars_exclude=True`` (biases, norms) take plain SGD-with-momentum steps.
    """

    def __init__(
        self, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0, eta: float = 0.02
    ) -> None:
        if lr < 0 or not 0 <= momentum < 1 or eta <= 0:
            raise ValueError(f"bad LARS settings: lr={lr}, momentum={momentum}, eta={eta}")
        super().__init__(
            params,
            {
                "lr": lr,
                "momentum": momentum,
                "weight_decay": weight_decay,
                "eta": eta,
                "lars_exclude": False,
            },
        )

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                d = p.grad
                if not group["lars_exclude"]:
                    d = d.add(p, alpha=group["weight_decay"])
                    w_norm, d_norm = torch.norm(p), torch.norm(d)
                    trust = torch.where(
                        (w_norm > 0) & (d_norm > 0),
                        group["eta"] * w_norm / d_norm,
                        torch.ones_like(w_norm),
                    )
                    d = d.mul(trust)
                buf = self.state[p].get("momentum_buffer")
                if buf is None:
                    buf = self.state[p]["momentum_buffer"] = torch.clone(d).detach()
                else:
                    buf.mul_(group["momentum"]).add_(d)
                p.add_(buf, alpha=-group["lr"])
        return loss


class AdamW(torch.optim.AdamW):
    """torch's AdamW without its per-step accelerator probe when every parameter is on the CPU.

    Each ``step`` asks the current accelerator whether a CUDA graph is being captured. On a
    machine whose CUDA driver fails to initialise that question raises, although the run has
    fallen back to the CPU (RELIABILITY 26); CPU parameters are never in a CUDA graph.
    """

    def _accelerator_graph_capture_health_check(self) -> None:
        if getattr(self, "_all_on_cpu", None) is None:
            self._all_on_cpu = all(
                p.device.type == "cpu" for g in self.param_groups for p in g["params"]
            )
        if not self._all_on_cpu:
            super()._accelerator_graph_capture_health_check()


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay, "lars_exclude": False},
        {"params": no_decay, "weight_decay": 0.0, "lars_exclude": True},
    ]


def build_optimizer(model: nn.Module, cfg: OptimConfig, lr: float) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg.weight_decay)
    if cfg.optimizer == "sgd":
        for g in groups:
            g.pop("lars_exclude")
        return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum)
    if cfg.optimizer == "adamw":
        for g in groups:
            g.pop("lars_exclude")
        return AdamW(groups, lr=lr)
    if cfg.optimizer == "lars":
        return LARS(groups, lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}")
