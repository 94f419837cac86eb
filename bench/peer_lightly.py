"""The peer's side of ``bench/peer.py``: lightly's SimCLR, run in lightly's own environment.

This file never imports sslstudio; it runs under the peer environment's Python. It follows
lightly's own SimCLR example (ResNet-18 with its fc removed, ``SimCLRProjectionHead(512, 512,
128)``, ``NTXentLoss()``, ``SimCLRTransform(input_size)``, SGD lr 0.06, momentum 0.9, weight
decay 5e-4), trains until the wall-clock budget is spent, and saves the backbone's weights as
a torchvision state dict in safetensors so that the studio evaluates them with its own kNN.

    peer-python bench/peer_lightly.py --data DIR/train --size 32 --batch 128 --seconds 240 --out
    W.safetensors
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch
import torchvision
from lightly.loss import NTXentLoss
from lightly.models.modules import SimCLRProjectionHead
from lightly.transforms.simclr_transform import SimCLRTransform
from safetensors.torch import save_file
from torch import nn


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--size", type=int, required=True)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--seconds", type=float, required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    t0 = time.perf_counter()
    resnet = torchvision.models.resnet18()
    resnet.fc = nn.Identity()
    head = SimCLRProjectionHead(512, 512, 128)
    model = nn.Sequential(resnet, head)
    criterion = NTXentLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.06, momentum=0.9, weight_decay=5e-4)
    transform = SimCLRTransform(input_size=args.size)
    dataset = torchvision.datasets.ImageFolder(args.data, transform=transform)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=args.batch, shuffle=True, drop_last=True, num_workers=0
    )  # one core, as the studio's run beside it
    steps, images, losses = 0, 0, []
    t_train = time.perf_counter()
    done = False
    while not done:
        for (x0, x1), _ in loader:
            loss = criterion(model(x0), model(x1))
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            steps += 1
            images += x0.shape[0]
            losses.append(float(loss))
            if time.perf_counter() - t0 >= args.seconds:
                done = True
                break
    train_s = time.perf_counter() - t_train
    save_file({k: v.contiguous() for k, v in resnet.state_dict().items()}, args.out)
    print(
        json.dumps(
            {
                "steps": steps,
                "images": images,
                "train_s": train_s,
                "images_per_s": images / train_s,
                "wall_s": time.perf_counter() - t0,
                "first_loss": losses[0],
                "last_loss": losses[-1],
                "torch": torch.__version__,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
