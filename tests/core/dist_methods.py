"""The scenario every method's distributed equivalence test runs, on one process (the reference,
in pytest) and on two (``dist_methods_worker.py`` under gloo): a few SGD steps on fixed global
batches, with a checkpoint in the middle that the other process count resumes from.

The network is each method's at test sizes on ``tiny_cnn`` (``vit_tiny`` for MAE), with every
BatchNorm swapped for a norm that does not depend on how the batch is split (GroupNorm in the
backbone, none in the heads): gloo on CPUs has no SyncBatchNorm, which is what CUDA runs use.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from sslstudio.config import RunConfig
from sslstudio.core.methods import build_method
from sslstudio.core.models.groupnorm import batchnorm_to_groupnorm
from sslstudio.core.train import checkpoints as ckpt
from sslstudio.core.train.ranks import Alone
from sslstudio.core.train.step import optimise
from sslstudio.core.transforms.presets import preset
from sslstudio.core.transforms.views import ViewPipeline, step_generator

NUM_IMAGES, BATCH, STEPS, RESUME_AT = 16, 8, 3, 2  # steps 0-1, a checkpoint, then step 2
SMALL = {"proj_hidden": 32, "proj_out": 16}
OPTIONS: dict[str, dict] = {
    "simclr": SMALL,
    "moco": {**SMALL, "queue_size": 16, "symmetric": True},
    "mocov3": SMALL,
    "nnclr": {**SMALL, "support_size": 16, "pred_hidden": 32},
    "swav": {**SMALL, "n_prototypes": 8, "queue_length": 16},  # prototypes frozen 2 steps
    "dino": {"out_dim": 32, "head_hidden": 32, "bottleneck": 16, "head_batchnorm": False},
    "deepcluster": {**SMALL, "n_clusters": 4, "recluster_every": 1},
    "wmse": {"proj_hidden": 32, "proj_out": 4, "w_size": 8},
    "barlowtwins": SMALL,
    "vicreg": SMALL,
    "byol": SMALL,
    "simsiam": {**SMALL, "pred_hidden": 8},
    "rotnet": {},
    "colorization": {},
    "cpc": {},
    "mae": {},
}
# small enough that float rounding (the ranks sum in another order) stays at rounding size over
# the steps: Barlow Twins' and W-MSE's steps at 0.05 amplify a 1e-7 change to 1e-2
LR = {"barlowtwins": 0.001, "wmse": 0.002}
# methods whose step reads the rest of the global batch: without the collectives, two ranks
# train something else (the per-image ones give the same step either way)
BATCH_WIDE = ["simclr", "moco", "mocov3", "nnclr", "swav", "dino", "deepcluster", "wmse"]
BATCH_WIDE += ["barlowtwins", "vicreg", "cpc", "mae"]


def config(name: str) -> RunConfig:
    backbone = "vit_tiny" if name == "mae" else "tiny_cnn"
    return RunConfig(
        data_root=".",
        method=name,
        backbone=backbone,
        image_size=16,
        batch_size=BATCH,
        augment=preset("natural", 16),
        method_options=OPTIONS[name],
    )


def tiny(name: str) -> tuple[nn.Module, torch.optim.Optimizer]:
    """The method, ready to train (``on_train_start`` done), and its SGD, from a fixed seed."""
    torch.manual_seed(0)
    method = build_method(config(name))
    batchnorm_to_groupnorm(method)
    for module in list(method.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.modules.batchnorm._BatchNorm):
                setattr(module, child_name, nn.Identity())
    method.on_train_start(NUM_IMAGES, STEPS)
    trained = [p for p in method.parameters() if p.requires_grad]
    return method, torch.optim.SGD(trained, lr=LR.get(name, 0.05), momentum=0.9)


def global_batch(
    method: nn.Module, name: str, step: int
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Step ``step``'s views of the global batch, and the images' dataset positions."""
    g = torch.Generator().manual_seed(100 + step)
    images = torch.randint(0, 256, (BATCH, 3, 20, 20), generator=g, dtype=torch.uint8)
    pipeline = ViewPipeline(method.view_specs(config(name)), constraints=method.constraints)
    idx = (torch.arange(BATCH) + step * BATCH) % NUM_IMAGES
    return pipeline(images, step_generator(0, step)), idx


def run(method, opt, name: str, steps: range, ranks: Alone) -> list[float]:
    """``steps`` SGD steps, each rank on its contiguous share of the global batch; the losses
    (averaged over ranks)."""
    per = BATCH // ranks.size
    rows = slice(ranks.rank * per, (ranks.rank + 1) * per)
    losses = []
    for step in steps:
        views, idx = global_batch(method, name, step)
        share = [v[rows] for v in views]
        loss, _ = optimise(method, opt, None, share, idx[rows].numpy(), None, None, ranks.sync)
        method.on_step_end(step, STEPS)
        losses.append(float(ranks.loss(loss.detach())))
    return losses


def save(method, opt, folder: Path, name: str) -> Path:
    state = {"optimizer": opt.state_dict()}
    return ckpt.save_checkpoint(folder, name, method.state_dict(), state, {"step": RESUME_AT})


def load(method, opt, path: Path) -> None:
    model_state, train_state, _ = ckpt.load_checkpoint(path)
    ckpt.load_model_state(method, model_state, path)
    opt.load_state_dict(train_state["optimizer"])


def state(method) -> dict[str, torch.Tensor]:
    """Everything a step changes: weights and buffers (queues, centres, banks, counters)."""
    return {k: v.detach().clone().contiguous() for k, v in method.state_dict().items()}
