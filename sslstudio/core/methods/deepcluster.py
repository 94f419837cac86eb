"""DeepCluster-v2: k-means pseudo-labels over a memory bank, centroids as the classifier."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from sslstudio.config import option
from sslstudio.core.maths.clustering import spherical_kmeans
from sslstudio.core.methods.base import Batch, Method, register
from sslstudio.core.models.backbones import Backbone
from sslstudio.core.models.counters import StepCounter
from sslstudio.core.models.heads import simclr_head


@dataclass(frozen=True)
class DeepClusterConfig:
    n_clusters: int = option(
        64, "k-means clusters (pseudo-classes); paper: 3000 for ImageNet", 2, 65536
    )
    temperature: float = option(0.1, "softmax temperature τ over centroid similarities", 0.01, 1.0)
    kmeans_iters: int = option(10, "k-means iterations per clustering round", 1, 100)
    recluster_every: int = option(
        0, "steps between clustering rounds (0 = once per epoch)", 0, 10**9
    )
    proj_hidden: int = option(512, "hidden width of the projection head", 16, 8192)
    proj_out: int = option(
        128, "width of the clustered embeddings (memory: 4 bytes x this per image)", 8, 4096
    )


@register("deepcluster")
class DeepCluster(Method):
    """DeepCluster [0] in its v2 form [1].

    Every image's latest embedding is kept in a memory bank. Each round (by default at every
    epoch start) k-means over the bank gives pseudo-labels and centroids; the loss until the
    next round is the cross-entropy of (embedding · centroids / τ) against the pseudo-label.
    The first round needs a filled bank, so during the first epoch the loss is zero and the
    network only fills the bank, as DeepCluster-v2's initial pass over the data does.

    - [0] Caron, Bojanowski, Joulin, Douze, "Deep Clustering for Unsupervised Learning of Visual
      Features", ECCV 2018, https://arxiv.org/abs/1807.05520
    - [1] Caron et al. 2020, SwAV paper, appendix (DeepCluster-v2), https://arxiv.org/abs/2006.09882
    """

    Config = DeepClusterConfig
    display_name = "DeepCluster"
    distributed = True
    paper = "Caron et al. 2018, https://arxiv.org/abs/1807.05520 (v2: arXiv 2006.09882)"
    paper_recipe = (
        "as for SwAV: LARS, lr 0.3 per 256 images at batch 4096, weight decay 1e-6, three "
        "clusterings of 3000, τ 0.1, multi-crop, 800 epochs"
    )
    summary = (
        "DeepCluster alternates two things: it groups all images into clusters by how similar "
        "the network currently finds them, then trains the network to recognise each image's "
        "cluster from an altered view. Regrouping every epoch lets the clusters and the features "
        "improve together. The first epoch only collects features, so its loss reads zero. It "
        "needs several rounds: a few minutes on a CPU helped on tissue tiles, hardly on small "
        "photos."
    )

    def __init__(self, backbone: Backbone, config: DeepClusterConfig) -> None:
        super().__init__(backbone, config)
        self.head = simclr_head(backbone.feature_dim, config.proj_hidden, config.proj_out, 2)
        # per-image state, sized by on_train_start; all of it is checkpointed
        self.register_buffer("bank", torch.zeros(0, config.proj_out))  # (N, D) unit rows
        self.register_buffer("labels", torch.zeros(0, dtype=torch.long))  # (N,) pseudo-labels
        self.register_buffer("centroids", torch.zeros(config.n_clusters, config.proj_out))
        # drawn from the run's seed when the method is built: runs with other seeds cluster
        # differently
        self.register_buffer("seed", torch.randint(0, 2**31 - 1, ()))
        self.register_buffer("fill_start", torch.zeros((), dtype=torch.long))  # step the bank began
        self.steps_done = StepCounter()
        self._num_images = 0

    def on_train_start(self, num_images: int, total_steps: int) -> None:
        self._num_images = num_images
        dev = self.bank.device
        self.bank = torch.zeros(num_images, self.config.proj_out, device=dev)
        self.labels = torch.zeros(num_images, dtype=torch.long, device=dev)

    def on_data_changed(self, num_images: int, step: int) -> None:
        """A resumed run on a changed folder: the bank's rows were the old folder's images, so it
        is refilled for one round before clustering again (the loss is 0 meanwhile)."""
        self.on_train_start(num_images, 0)
        self.fill_start.fill_(step)

    def recluster_every(self, batch_size: int) -> int:
        return self.config.recluster_every or max(1, self._num_images // max(1, batch_size))

    @torch.no_grad()
    def recluster(self, round_: int) -> None:
        """One k-means round over the bank; the seed depends on the round so resume is exact."""
        k = min(self.config.n_clusters, self.bank.shape[0])
        g = torch.Generator().manual_seed(int(self.seed) * 1_000_003 + round_)
        centroids, labels = spherical_kmeans(self.bank, k, self.config.kmeans_iters, generator=g)
        self.centroids.zero_()
        self.centroids[:k] = centroids  # unused rows stay zero: logit 0, never a target
        self.labels.copy_(labels)

    def training_step(self, batch: Batch) -> tuple[Tensor, dict[str, float]]:
        if self.bank.shape[0] == 0 or batch.indices is None:
            raise RuntimeError("DeepCluster needs on_train_start(num_images, ...) and the indices")
        views, indices = batch.views, batch.indices.to(self.bank.device)
        every = self.recluster_every(views[0].shape[0] * self.ranks.size)  # the global batch
        step = int(self.steps_done) - int(self.fill_start)  # steps since the bank began filling
        if step > 0 and step % every == 0:
            self.recluster(step // every)
        z = F.normalize(self.head(self.backbone(torch.cat(views))), dim=1)  # (V*B, D)
        zs = z.chunk(len(views))
        with torch.no_grad():  # (B, D): the views' mean direction, every rank's rows on every
            # rank, so the banks (and the k-means over the whole folder) stay one
            rows = F.normalize(sum(zs).float(), dim=1)
            self.bank[self.ranks.gather(indices)] = self.ranks.gather(rows)
        if step < every:  # no clustering yet: fill the bank, learn nothing
            return z.sum() * 0.0, {"clustered": 0.0}
        target = self.labels[indices]  # (B,)
        logits = [zi @ self.centroids.T / self.config.temperature for zi in zs]  # (B, K) each
        loss = sum(F.cross_entropy(lg, target) for lg in logits) / len(logits)
        return loss, {"clustered": 1.0}

    def on_step_end(self, step: int, total_steps: int) -> None:
        self.steps_done.set(step + 1)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        state_dict.setdefault(prefix + "fill_start", torch.zeros((), dtype=torch.long))  # older
        # a checkpoint opened for embedding (no on_train_start) carries a bank sized for its folder
        for name in ("bank", "labels"):
            saved = state_dict.get(prefix + name)
            if saved is not None and saved.shape != getattr(self, name).shape:
                setattr(self, name, torch.empty_like(saved, device=getattr(self, name).device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
