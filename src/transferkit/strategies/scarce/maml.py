"""MAML (Finn et al., ICML 2017), second- and first-order, on the episodic base (see ``episodic``)."""
from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...backbones import Backbone
from ...data import ImageDataset
from ...data.episodes import (EpisodeLoader, as_images, episode_images, sample_episodes,
                             support_set)
from ...errors import DataError, TransferkitError
from ...params import BOOL, Interval
from ..base import POSITIVE, Classifier
from ..registry import register_strategy
from .episodic import EPISODE_CONSTRAINTS, _FewShot, _episode_groups, _summary


# -- MAML ----------------------------------------------------------------------------------------------

@register_strategy
class MAML(_FewShot):
    """Model-Agnostic Meta-Learning: learn an initialisation that few gradient steps adapt to a new task.

    For each episode the inner loop takes ``inner_steps`` SGD steps of size ``inner_lr`` on the support
    loss, on *fast weights* (``torch.func.functional_call``; the meta-parameters are untouched); the outer
    step (the Trainer's optimizer) minimises the query loss of the adapted weights, differentiating through
    the inner loop (second order) or treating the inner gradients as constants (``first_order=True``,
    FOMAML). Reference: Finn, Abbeel & Levine, "Model-Agnostic Meta-Learning for Fast Adaptation of Deep
    Networks", ICML 2017.

    Inputs: labelled base classes ``train``; episode tensors support (T, N*K, C, H, W), query (T, N*Q, C, H, W)
    with T = ``meta_batch`` episodes per outer step. The model is backbone + an ``n_way``-output linear head.

    BatchNorm: as in Finn et al.'s reference code, BatchNorm always uses the statistics of the current
    batch (support batch during the inner steps, query batch for the query loss), in meta-training and at
    test time; running statistics are never used (they are kept on cloned buffers, so evaluation does not
    change the model). Query predictions are therefore transductive over the query batch of an episode,
    the protocol under which MAML's published numbers were obtained.

    Args:
        n_way, k_shot, q_queries, episodes_per_epoch: the training episodes (Finn: 5-way, 15 queries).
        inner_steps: inner SGD steps in meta-training (Finn: 5 for miniImageNet).
        test_inner_steps: inner steps at test time (Finn: 10).
        inner_lr: the inner step size alpha (Finn: 0.01).
        first_order: FOMAML (no second derivatives; Finn: nearly the same accuracy, ~33% faster).
        meta_batch: episodes per outer step (Finn: 4 for miniImageNet).
        **kwargs: shared training parameters (Finn: Adam, meta learning rate beta = 1e-3).

    Example:
        >>> MAML(backbone="builtin:small-cnn", epochs=5, first_order=True).fit(base).evaluate(novel, episodes=600)
    """

    name = "maml"
    data_roles = ("train",)

    _parameter_constraints = {
        **EPISODE_CONSTRAINTS, "inner_steps": [Interval(int, 1)], "test_inner_steps": [Interval(int, 1)],
        "inner_lr": [POSITIVE], "first_order": [BOOL], "meta_batch": [Interval(int, 1)],
    }

    def __init__(self, *, n_way: int = 5, k_shot: int = 5, q_queries: int = 15, episodes_per_epoch: int = 100,
                 inner_steps: int = 5, test_inner_steps: int = 10, inner_lr: float = 0.01, first_order: bool = False,
                 meta_batch: int = 4, **kwargs):
        super().__init__(**kwargs)
        self.n_way, self.k_shot, self.q_queries, self.episodes_per_epoch = n_way, k_shot, q_queries, episodes_per_epoch
        self.inner_steps, self.test_inner_steps, self.inner_lr = inner_steps, test_inner_steps, inner_lr
        self.first_order, self.meta_batch = first_order, meta_batch

    def build_model(self, backbone: Backbone, num_classes: int) -> nn.Module:
        return Classifier(backbone, self.n_way)

    def train_loader(self, train: ImageDataset, **roles):
        return EpisodeLoader(train.with_transform(self.transform(True)), n_way=self.n_way, k_shot=self.k_shot,
                             q_queries=self.q_queries, episodes=self.episodes_per_epoch, meta_batch=self.meta_batch,
                             seed=self.seed)

    def _forward(self, params: dict, buffers: dict, x: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(self.model_, {**params, **buffers}, (x,))

    def adapt(self, support_x: torch.Tensor, support_y: torch.Tensor, steps: int | None = None,
              create_graph: bool | None = None) -> dict[str, torch.Tensor]:
        """The inner loop: fast weights after ``steps`` SGD steps on the support loss.

        The meta-parameters (``model_.parameters()``) are not modified. ``create_graph`` defaults to
        second order (``not first_order``) while training and False otherwise.
        """
        steps = steps or self.inner_steps
        if create_graph is None:
            create_graph = not self.first_order and torch.is_grad_enabled() and self.model_.training
        buffers = {n: b.clone() for n, b in self.model_.named_buffers()}
        fast = {n: p for n, p in self.model_.named_parameters()}
        if not any(p.requires_grad for p in fast.values()):
            fast = {n: p.detach().requires_grad_(True) for n, p in fast.items()}
        for _ in range(steps):
            loss = F.cross_entropy(self._forward(fast, buffers, support_x), support_y)
            grads = torch.autograd.grad(loss, list(fast.values()), create_graph=create_graph, allow_unused=True)
            fast = {n: (p - self.inner_lr * g if g is not None else p) for (n, p), g in zip(fast.items(), grads)}
        return fast

    def episode_logits(self, support_x, support_y, query_x, steps: int | None = None, create_graph=None):
        """Adapt on the support set, then logits (N*Q, n_way) of the query images under the fast weights."""
        fast = self.adapt(support_x, support_y, steps, create_graph)
        buffers = {n: b.clone() for n, b in self.model_.named_buffers()}
        return self._forward(fast, buffers, query_x)

    def training_step(self, batch) -> dict:
        sx, sy, qx, qy = batch
        losses, accs = [], []
        for t in range(sx.shape[0]):
            logits = self.episode_logits(sx[t], sy[t], qx[t])
            losses.append(F.cross_entropy(logits, qy[t]))
            accs.append((logits.argmax(1) == qy[t]).float().mean())
        return {"loss": torch.stack(losses).mean(), "acc": torch.stack(accs).mean()}

    def _episode_predict(self, sx, sy, qx, n_way: int) -> torch.Tensor:
        if n_way > self.n_way:
            raise DataError(f"MAML was meta-trained with n_way={self.n_way} outputs; a support set with {n_way} "
                            f"classes needs a model trained with n_way >= {n_way}.")
        was = self.model_.training
        self.model_.train()  # BatchNorm on batch statistics, as in meta-training (see the class docstring)
        try:
            with torch.inference_mode(False), torch.enable_grad():
                logits = self.episode_logits(sx.clone(), sy.clone(), qx.clone(), self.test_inner_steps, False)
        finally:
            self.model_.train(was)
        return logits.detach()[:, :n_way]

    def predict_proba(self, data, support=None) -> np.ndarray:
        """Adapt to ``support=(images, labels)`` (``test_inner_steps`` steps), then probabilities of
        ``data`` (N, n_support_classes). MAML needs a support set."""
        self.check_fitted()
        if support is None:
            raise TransferkitError("MAML.predict needs a support set: predict(images, support=(images, labels)).")
        images, sy, classes = support_set(support, "MAML")
        device = next(self.model_.parameters()).device
        sx, qx = self._pixels(images).to(device), self._pixels(as_images(data, "MAML")).to(device)
        return torch.softmax(self._episode_predict(sx, sy.to(device), qx, len(classes)).float(), -1).cpu().numpy()

    def _pixels(self, data) -> torch.Tensor:
        if isinstance(data, torch.Tensor):
            return data
        ds = self.prepare(data).with_transform(self.transform(False))
        return episode_images(ds, np.arange(len(ds)))

    def evaluate(self, data: ImageDataset, *, n_way: int | None = None, k_shot: int | None = None,
                 q_queries: int | None = None, episodes: int = 600, seed: int = 0, within_domain: bool = False) -> dict:
        """Mean accuracy ± 95% CI over ``episodes`` episodes; each adapts the network (no feature cache)."""
        self.check_fitted()
        n_way, k_shot, q_queries = self._episode_shape(n_way, k_shot, q_queries)
        t0 = time.perf_counter()
        ep = sample_episodes(data.labels, n_way=n_way, k_shot=k_shot, q_queries=q_queries, episodes=episodes,
                             seed=seed, class_names=data.classes,
                             groups=_episode_groups(data, within_domain, type(self).__name__))
        ds = self.prepare(data).with_transform(self.transform(False))
        device = next(self.model_.parameters()).device
        accs = []
        for i in range(episodes):
            sx, qx = episode_images(ds, ep["support"][i]).to(device), episode_images(ds, ep["query"][i]).to(device)
            sy, qy = torch.from_numpy(ep["support_labels"][i]).to(device), torch.from_numpy(ep["query_labels"][i]).to(device)
            accs.append(float((self._episode_predict(sx, sy, qx, n_way).argmax(1) == qy).float().mean()))
        return _summary(np.asarray(accs), n_way, k_shot, q_queries, time.perf_counter() - t0)

    def validation_metrics(self, loader) -> dict:
        xs, ys = zip(*[(x, y) for x, y in loader])
        x, y = torch.cat(xs), torch.cat(ys).cpu().numpy()
        ep = sample_episodes(y, n_way=self.n_way, k_shot=self.k_shot, q_queries=self.q_queries, episodes=20, seed=self.seed)
        accs = []
        for i in range(len(ep["support"])):
            sy = torch.from_numpy(ep["support_labels"][i]).to(x.device)
            pred = self._episode_predict(x[ep["support"][i]], sy, x[ep["query"][i]], self.n_way).argmax(1).cpu()
            accs.append(float((pred.numpy() == ep["query_labels"][i]).mean()))
        return {"val_accuracy": float(np.mean(accs))}

    def after_fit(self, train: ImageDataset, **roles) -> None:
        self.base_features_, self.base_labels_ = torch.zeros(0), torch.zeros(0, dtype=torch.long)
