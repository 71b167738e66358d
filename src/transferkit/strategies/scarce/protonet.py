"""Prototypical Networks (Snell et al., NeurIPS 2017) on the episodic base (see ``episodic``)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...backbones import Backbone
from ...data import ImageDataset
from ...data.episodes import EpisodeLoader
from ...engine import infer
from ...params import Options
from ..base import POSITIVE
from ..registry import register_strategy
from .episodic import EPISODE_CONSTRAINTS, METRICS, _FewShot, episodic_accuracy, prototype_logits, prototypes


# -- Prototypical Networks -----------------------------------------------------------------------------

@register_strategy
class ProtoNet(_FewShot):
    """Prototypical Networks: meta-train the backbone so that queries lie closest to their class's prototype.

    Each episode embeds support and query images with the backbone, takes the mean support embedding of
    each class as its prototype and minimises the cross-entropy of softmax(-distance(query, prototypes)).
    Reference: Snell, Swersky & Zemel, "Prototypical Networks for Few-shot Learning", NeurIPS 2017.

    Inputs: labelled base classes ``train`` (ImageDataset); novel classes at evaluation. Episode tensors:
    support (N*K, C, H, W), query (N*Q, C, H, W) -> embeddings (·, D) -> logits (N*Q, N).

    Args:
        n_way, k_shot, q_queries: training episodes (Snell used 15 queries per class and more ways for
            training than testing, e.g. 30-60; the default 5-way 5-shot keeps CPU runs small).
        episodes_per_epoch: episodes (optimizer steps) per epoch (Snell: 100).
        metric: 'euclidean' (squared Euclidean, Snell's choice) or 'cosine' (scaled by ``temperature``).
        temperature: scale of cosine logits (10, as in Chen et al. 2019's Baseline++ / Gidaris 2018).
        **kwargs: the shared training parameters of NeuralStrategy (Snell: Adam, lr 1e-3).

    Example:
        >>> ProtoNet(backbone="file:runs/pretrain", epochs=5, metric="cosine").fit(base).evaluate(novel, k_shot=1)
    """

    name = "protonet"
    data_roles = ("train",)

    _parameter_constraints = {
        **EPISODE_CONSTRAINTS, "metric": [Options(*METRICS)], "temperature": [POSITIVE],
    }

    def __init__(self, *, n_way: int = 5, k_shot: int = 5, q_queries: int = 15, episodes_per_epoch: int = 100,
                 metric: str = "euclidean", temperature: float = 10.0, **kwargs):
        super().__init__(**kwargs)
        self.n_way, self.k_shot, self.q_queries = n_way, k_shot, q_queries
        self.episodes_per_epoch, self.metric, self.temperature = episodes_per_epoch, metric, temperature

    def build_model(self, backbone: Backbone, num_classes: int) -> nn.Module:
        return backbone  # the embedding network is the whole model

    @property
    def embedder(self) -> nn.Module:
        return self.model_

    def train_loader(self, train: ImageDataset, **roles):
        return EpisodeLoader(train.with_transform(self.transform(True)), n_way=self.n_way, k_shot=self.k_shot,
                             q_queries=self.q_queries, episodes=self.episodes_per_epoch, seed=self.seed)

    def episode_logits(self, support_x, support_y, query_x, n_way: int | None = None) -> torch.Tensor:
        """Logits (N*Q, N) of one episode from images: support (N*K, C, H, W), query (N*Q, C, H, W)."""
        n_way = n_way or int(support_y.max()) + 1
        z = self.model_(torch.cat([support_x, query_x]))
        s, q = z[:len(support_x)], z[len(support_x):]
        return prototype_logits(q, prototypes(s, support_y, n_way), self.metric, self.temperature)

    def training_step(self, batch) -> dict:
        sx, sy, qx, qy = batch
        losses, accs = [], []
        for t in range(sx.shape[0]):
            logits = self.episode_logits(sx[t], sy[t], qx[t], self.n_way)
            losses.append(F.cross_entropy(logits, qy[t]))
            accs.append((logits.argmax(1) == qy[t]).float().mean())
        return {"loss": torch.stack(losses).mean(), "acc": torch.stack(accs).mean()}

    def validation_metrics(self, loader) -> dict:
        """Episodic accuracy (100 episodes) on validation images (their classes should be disjoint)."""
        feats, labels = infer(loader, self.model_, device=next(self.model_.parameters()).device, targets=True)
        r = episodic_accuracy(feats, labels.numpy(), self._scores, n_way=self.n_way,
                              k_shot=self.k_shot, q_queries=self.q_queries, episodes=100, seed=self.seed)
        return {"val_accuracy": r["accuracy"]}

    def _scores(self, s, sy, q, n_way):
        return prototype_logits(q, prototypes(s, sy, n_way), self.metric, self.temperature)

    def after_fit(self, train: ImageDataset, **roles) -> None:
        self._set_base(train)
