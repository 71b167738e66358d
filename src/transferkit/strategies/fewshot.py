"""Few-shot learning: new classes from 1-5 labelled images each.

Meta-learning of the backbone through the one Trainer (the train loader is an iterable of episodes drawn
by :class:`~transferkit.data.EpisodeSampler`): Prototypical Networks (Snell et al., NeurIPS 2017) and MAML
(Finn et al., ICML 2017; second- and first-order). The strong baselines work on frozen, cached
embeddings (``engine.extract_features``): SimpleShot nearest-centroid on centred, L2-normalised features
(Wang et al. 2019), a logistic-regression probe on the support set (Tian et al., ECCV 2020) and a linear
head fine-tuned on the support set (Chen et al., "A Closer Look at Few-shot Classification", ICLR 2019).

Every few-shot strategy shares:

* ``evaluate(data, n_way=5, k_shot=5, q_queries=15, episodes=600, seed=0)``: the standard protocol on
  classes disjoint from training: mean query accuracy over ``episodes`` episodes ± the 95% confidence
  interval (1.96 · std / sqrt(episodes)); episodes run on cached features wherever the backbone is not
  adapted per episode (everything but MAML), vectorised over episodes.
* ``predict(query, support=(images, labels))`` / ``predict_proba``: labels and probabilities for new,
  unlabelled images given a labelled support set (images: an ImageDataset, a uint8/float array (N, H, W[, C]),
  a [0, 1] tensor (N, C, H, W) or a list of file paths; labels: any values, e.g. strings). Probability
  columns follow ``np.unique(support labels)``. Without ``support`` the base (training) classes are used.

Example:
    >>> from transferkit.data import load_digits, class_split
    >>> base, novel = class_split(load_digits(), ["0", "1", "2", "3", "4"])
    >>> proto = ProtoNet(backbone="builtin:small-cnn", epochs=3, episodes_per_epoch=50).fit(base)
    >>> proto.evaluate(novel, n_way=5, k_shot=1)          # {'accuracy': ..., 'ci95': ..., 'episodes': 600, ...}
    >>> proto.predict(novel_images, support=(support_images, ["cat", "dog", "cat"]))
"""
from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..backbones import Backbone
from ..data import ImageDataset
from ..data.episodes import (EpisodeLoader, as_images, episode_images, sample_episodes,  # noqa: F401  (re-exported)
                             support_set)
from ..engine import extract_features, mean_confidence_interval
from ..errors import DataError, TransferkitError, check_choice, check_range
from ..utils import count_parameters, seed_everything
from .base import Classifier, NeuralStrategy, warn_if_untrained
from .registry import register_strategy

METRICS = ("euclidean", "cosine")


# -- episodes ----------------------------------------------------------------------------------------

def prototypes(embeddings: torch.Tensor, labels: torch.Tensor, n_way: int) -> torch.Tensor:
    """Class means of embeddings: (..., S, D) with labels (..., S) in 0..n_way-1 -> (..., n_way, D)."""
    onehot = F.one_hot(labels.long(), n_way).to(embeddings.dtype)               # (..., S, N)
    sums = onehot.transpose(-1, -2) @ embeddings                                 # (..., N, D)
    return sums / onehot.sum(-2).clamp_min(1).unsqueeze(-1)


def prototype_logits(query: torch.Tensor, protos: torch.Tensor, metric: str = "euclidean",
                     temperature: float = 10.0) -> torch.Tensor:
    """Logits (..., Q, N): minus squared Euclidean distance (Snell 2017) or scaled cosine similarity."""
    if metric == "cosine":
        return temperature * F.normalize(query, dim=-1) @ F.normalize(protos, dim=-1).transpose(-1, -2)
    q2 = (query * query).sum(-1, keepdim=True)
    p2 = (protos * protos).sum(-1).unsqueeze(-2)
    return -(q2 - 2 * query @ protos.transpose(-1, -2) + p2)


def episodic_accuracy(features, labels, scorer, *, n_way: int = 5, k_shot: int = 5, q_queries: int = 15,
                      episodes: int = 600, seed: int = 0, class_names=None, groups=None, chunk: int = 200) -> dict:
    """Run the episodic protocol on precomputed features (N, D) (``groups``: each episode within one group).

    ``scorer(support (E, NK, D), support_labels (E, NK), query (E, NQ, D), n_way) -> scores (E, NQ, n_way)``.
    Returns ``accuracy`` (mean over episodes), ``ci95`` (half-width of the 95% interval), ``std``,
    ``episodes``, ``n_way``, ``k_shot``, ``q_queries``, ``eval_s``.
    """
    t0 = time.perf_counter()
    feats = torch.as_tensor(np.asarray(features), dtype=torch.float32)
    ep = sample_episodes(labels, n_way=n_way, k_shot=k_shot, q_queries=q_queries, episodes=episodes, seed=seed,
                         class_names=class_names, groups=groups)
    accs = []
    for i in range(0, episodes, chunk):
        sl = slice(i, i + chunk)
        s, q = feats[torch.from_numpy(ep["support"][sl])], feats[torch.from_numpy(ep["query"][sl])]
        sy, qy = torch.from_numpy(ep["support_labels"][sl]), torch.from_numpy(ep["query_labels"][sl])
        scores = scorer(s, sy, q, n_way)
        accs.append((scores.argmax(-1) == qy).float().mean(-1))
    return _summary(torch.cat(accs).numpy(), n_way, k_shot, q_queries, time.perf_counter() - t0)


def _episode_groups(data: ImageDataset, within_domain: bool, owner: str):
    """``data.domains`` when episodes are drawn within one domain, else None; an error if it has none."""
    if not within_domain:
        return None
    if getattr(data, "domains", None) is None:
        raise TransferkitError(f"{owner}.evaluate(within_domain=True) draws each episode within one domain, but "
                               f"{getattr(data, 'name', None) or 'this dataset'} has no domains (e.g. Omniglot's "
                               f"alphabets); evaluate without within_domain.")
    return data.domains


def _summary(accs, n_way, k_shot, q_queries, seconds) -> dict:
    mean, h = mean_confidence_interval(accs, 0.95)
    return {"accuracy": mean, "ci95": h, "std": float(np.std(accs, ddof=1)) if len(accs) > 1 else float("nan"),
            "episodes": int(len(accs)), "n_way": n_way, "k_shot": k_shot, "q_queries": q_queries,
            "eval_s": seconds}


# -- shared behaviour ------------------------------------------------------------------------------

class _FewShot(NeuralStrategy):
    """Episodic evaluation and support-set prediction on top of an embedding network ``embedder``."""

    family = "scarce-data"

    @property
    def embedder(self) -> nn.Module:
        return self.backbone_

    def _transform_features(self, f: torch.Tensor) -> torch.Tensor:
        return f

    def _scores(self, s, sy, q, n_way) -> torch.Tensor:
        """(E, NK, D), (E, NK), (E, NQ, D) -> scores (E, NQ, n_way); higher is more likely."""
        raise NotImplementedError

    def embed(self, images, *, cache: bool = False) -> torch.Tensor:
        """Embeddings (N, D) of images (any form accepted by ``predict``), through ``_transform_features``."""
        self.check_fitted()
        data = self.prepare(as_images(images, type(self).__name__))
        net = self.embedder
        if isinstance(data, torch.Tensor):
            was = net.training
            net.eval()
            with torch.inference_mode():
                device = next(net.parameters()).device
                f = torch.cat([net(x.to(device)).float().cpu() for x in data.split(256)]) if len(data) else torch.zeros(0, 1)
            net.train(was)
        else:
            f = torch.from_numpy(np.array(extract_features(self.backbone_, data, cache=cache, progress=False,
                                                          num_workers=self.num_workers)))
        return self._transform_features(f.clone())

    def predict_proba(self, data, support=None) -> np.ndarray:
        """Probabilities (N, n_classes): over the support's classes (``np.unique(labels)`` order) when
        ``support=(images, labels)`` is given, else over the base classes ``classes_``."""
        self.check_fitted()
        q = self.embed(data)
        if support is None:
            s, sy, n = self.base_features_, self.base_labels_, len(self.classes_)
        else:
            images, sy, classes = support_set(support, type(self).__name__)
            s, n = self.embed(images), len(classes)
        return torch.softmax(self._scores(s[None], sy[None], q[None], n)[0].float(), -1).numpy()

    def predict(self, data, support=None) -> np.ndarray:
        """Labels: the support's label values when ``support`` is given, else base-class indices."""
        proba = self.predict_proba(data, support)
        if support is None:
            return proba.argmax(1)
        return np.unique(np.asarray(getattr(support[1], "labels", support[1])).reshape(-1))[proba.argmax(1)]

    def _episode_shape(self, n_way, k_shot, q_queries) -> tuple[int, int, int]:
        """Evaluation episodes: as given, else the model's own training episodes (ProtoNet, MAML), else the
        usual 5-way 5-shot 15-query; so a model trained with ``-p q_queries=10`` is also evaluated so."""
        return tuple(v if v is not None else getattr(self, name, default) for v, name, default in
                     ((n_way, "n_way", 5), (k_shot, "k_shot", 5), (q_queries, "q_queries", 15)))

    def evaluate(self, data: ImageDataset, *, n_way: int | None = None, k_shot: int | None = None,
                 q_queries: int | None = None, episodes: int = 600, seed: int = 0, within_domain: bool = False) -> dict:
        """Mean accuracy ± 95% CI over ``episodes`` N-way K-shot episodes drawn from ``data`` (the novel
        classes), on cached features of the (frozen) embedding network (episode shape: ``_episode_shape``).
        ``within_domain`` draws each episode's classes from one of ``data.domains`` (Lake et al. 2015's
        within-alphabet protocol on Omniglot)."""
        self.check_fitted()
        n_way, k_shot, q_queries = self._episode_shape(n_way, k_shot, q_queries)
        if not isinstance(data, ImageDataset):
            raise TransferkitError(f"{type(self).__name__}.evaluate expects an ImageDataset; got {type(data).__name__}.")
        protocol = dict(n_way=n_way, k_shot=k_shot, q_queries=q_queries, class_names=data.classes,
                        groups=_episode_groups(data, within_domain, type(self).__name__))
        sample_episodes(data.labels, episodes=1, **protocol)  # fail before extracting features
        feats = self.embed(data, cache=True)
        return episodic_accuracy(feats, data.labels, self._scores, episodes=episodes, seed=seed, **protocol)

    def _set_base(self, train: ImageDataset) -> None:
        """Base-class features, for ``predict`` without a support set."""
        self.base_features_ = self.embed(train, cache=True)
        self.base_labels_ = torch.from_numpy(train.labels.copy())

    def _tensor_state(self) -> dict:
        return {**{f"model.{k}": v for k, v in self.model_.state_dict().items()},
                "base_features": self.base_features_, "base_labels": self.base_labels_}

    def _restore(self, state: dict, tensors: dict) -> None:
        model = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
        super()._restore(state, model)
        self.base_features_, self.base_labels_ = tensors["base_features"], tensors["base_labels"]


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

    def __init__(self, *, n_way: int = 5, k_shot: int = 5, q_queries: int = 15, episodes_per_epoch: int = 100,
                 metric: str = "euclidean", temperature: float = 10.0, **kwargs):
        super().__init__(**kwargs)
        self.n_way, self.k_shot, self.q_queries = n_way, k_shot, q_queries
        self.episodes_per_epoch, self.metric, self.temperature = episodes_per_epoch, metric, temperature

    def _validate_params(self):
        super()._validate_params()
        check_choice(type(self).__name__, "metric", self.metric, METRICS)
        check_range(type(self).__name__, "episodes_per_epoch", self.episodes_per_epoch, 1)
        check_range(type(self).__name__, "temperature", self.temperature, 0, low_open=True)

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

    def validate(self, loader) -> dict:
        """Episodic accuracy (100 episodes) on validation images (their classes should be disjoint)."""
        feats, labels = [], []
        for x, y in loader:
            feats.append(self.model_(x.to(next(self.model_.parameters()).device)).float().cpu())
            labels.append(y.cpu())
        r = episodic_accuracy(torch.cat(feats), torch.cat(labels).numpy(), self._scores, n_way=self.n_way,
                              k_shot=self.k_shot, q_queries=self.q_queries, episodes=100, seed=self.seed)
        return {"val_accuracy": r["accuracy"]}

    def _scores(self, s, sy, q, n_way):
        return prototype_logits(q, prototypes(s, sy, n_way), self.metric, self.temperature)

    def fit(self, train: ImageDataset, val: ImageDataset | None = None, **roles):
        """Meta-train on the base classes of ``train`` (episodes through the one Trainer); returns self."""
        super().fit(train, val, **roles)
        self._set_base(self._check_train(train))
        return self


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

    def __init__(self, *, n_way: int = 5, k_shot: int = 5, q_queries: int = 15, episodes_per_epoch: int = 100,
                 inner_steps: int = 5, test_inner_steps: int = 10, inner_lr: float = 0.01, first_order: bool = False,
                 meta_batch: int = 4, **kwargs):
        super().__init__(**kwargs)
        self.n_way, self.k_shot, self.q_queries, self.episodes_per_epoch = n_way, k_shot, q_queries, episodes_per_epoch
        self.inner_steps, self.test_inner_steps, self.inner_lr = inner_steps, test_inner_steps, inner_lr
        self.first_order, self.meta_batch = first_order, meta_batch

    def _validate_params(self):
        super()._validate_params()
        owner = type(self).__name__
        check_range(owner, "inner_steps", self.inner_steps, 1)
        check_range(owner, "test_inner_steps", self.test_inner_steps, 1)
        check_range(owner, "inner_lr", self.inner_lr, 0, low_open=True)
        check_range(owner, "meta_batch", self.meta_batch, 1)
        check_range(owner, "n_way", self.n_way, 2)

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

    def validate(self, loader) -> dict:
        xs, ys = zip(*[(x, y) for x, y in loader])
        x, y = torch.cat(xs), torch.cat(ys).cpu().numpy()
        ep = sample_episodes(y, n_way=self.n_way, k_shot=self.k_shot, q_queries=self.q_queries, episodes=20, seed=self.seed)
        accs = []
        for i in range(len(ep["support"])):
            sy = torch.from_numpy(ep["support_labels"][i]).to(x.device)
            pred = self._episode_predict(x[ep["support"][i]], sy, x[ep["query"][i]], self.n_way).argmax(1).cpu()
            accs.append(float((pred.numpy() == ep["query_labels"][i]).mean()))
        return {"val_accuracy": float(np.mean(accs))}

    def fit(self, train: ImageDataset, val: ImageDataset | None = None, **roles):
        """Meta-train the initialisation on episodes of ``train`` (base classes); returns self."""
        super().fit(train, val, **roles)
        self.base_features_, self.base_labels_ = torch.zeros(0), torch.zeros(0, dtype=torch.long)
        return self


# -- baselines on frozen features ------------------------------------------------------------------------

class _FrozenBaseline(_FewShot):
    """A frozen backbone (optionally first trained on the base classes with cross-entropy through the
    Trainer: Chen et al. 2019's "Baseline" pre-training) and a per-episode classifier on cached features."""

    data_roles = ("train",)

    def __init__(self, *, pretrain_on_base: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.pretrain_on_base = pretrain_on_base

    def fit(self, train: ImageDataset, val: ImageDataset | None = None, **roles):
        """Optionally train the backbone on ``train`` (base classes), then cache base features; returns self."""
        t0 = time.perf_counter()
        if self.pretrain_on_base:
            super().fit(train, val, **roles)
        else:
            self._validate_params()
            train = self._check_train(train)
            seed_everything(self.seed)
            self.classes_ = list(train.classes)
            self.backbone_ = self.make_backbone()
            warn_if_untrained(self.backbone_, type(self).__name__, ", or pretrain_on_base=True to train it on the "
                              "base classes first")
            self.model_ = self.build_model(self.backbone_, len(self.classes_))
            self.model_.eval()
            self.history_ = []
            self.n_params_ = count_parameters(self.backbone_)
            self.n_trainable_params_ = 0
        train = self._check_train(train)
        self.backbone_.eval()
        raw = torch.from_numpy(np.array(extract_features(self.backbone_, train, progress=False, num_workers=self.num_workers)))
        self.base_mean_ = raw.mean(0)
        self._set_base(train)
        self.fit_time_ = time.perf_counter() - t0
        return self

    def _tensor_state(self) -> dict:
        return {**super()._tensor_state(), "base_mean": self.base_mean_}

    def _restore(self, state: dict, tensors: dict) -> None:
        super()._restore(state, tensors)
        self.base_mean_ = tensors["base_mean"]


@register_strategy
class SimpleShot(_FrozenBaseline):
    """Nearest class centroid on centred, L2-normalised frozen features ("CL2N").

    Features are centred by the mean base-class feature, L2-normalised, and each query takes the label
    of the closest support-class mean (Euclidean). No training beyond the (optional) base pre-training.
    Reference: Wang, Chao, Weinberger & van der Maaten, "SimpleShot: Revisiting Nearest-Neighbor
    Classification for Few-Shot Learning", arXiv 1911.04623 (2019).

    Inputs: base classes ``train`` (for the centring mean and the backbone). Features (N, D).

    Args:
        normalize: 'cl2n' (centre + L2, the paper's best), 'l2' or 'none'.
        pretrain_on_base: first fine-tune the backbone on ``train`` with cross-entropy (``epochs``, ``lr``...).

    Example:
        >>> SimpleShot(backbone="file:runs/pretrain").fit(base).evaluate(novel, k_shot=1)
    """

    name = "simpleshot"

    def __init__(self, *, normalize: str = "cl2n", **kwargs):
        super().__init__(**kwargs)
        self.normalize = normalize

    def _validate_params(self):
        super()._validate_params()
        check_choice("SimpleShot", "normalize", self.normalize, ("cl2n", "l2", "none"))

    def _transform_features(self, f):
        if self.normalize == "cl2n" and hasattr(self, "base_mean_"):
            f = f - self.base_mean_
        return F.normalize(f, dim=-1) if self.normalize != "none" else f

    def _scores(self, s, sy, q, n_way):
        return prototype_logits(q, prototypes(s, sy, n_way), "euclidean")


@register_strategy
class SupportLinearProbe(_FrozenBaseline):
    """Logistic regression trained on the support set's frozen, L2-normalised features, per episode.

    Reference: Tian, Wang, Krishnan, Tenenbaum & Isola, "Rethinking Few-Shot Image Classification: a Good
    Embedding Is All You Need?", ECCV 2020 (scikit-learn logistic regression on normalised embeddings).

    Args:
        C: inverse L2 regularisation of the logistic regression (scikit-learn's default 1.0, as in Tian 2020).
        pretrain_on_base: first fine-tune the backbone on ``train`` with cross-entropy.

    Example:
        >>> SupportLinearProbe(backbone="file:runs/pretrain").fit(base).evaluate(novel)
    """

    name = "support-linear-probe"

    def __init__(self, *, C: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.C = C

    def _validate_params(self):
        super()._validate_params()
        check_range("SupportLinearProbe", "C", self.C, 0, low_open=True)

    def _transform_features(self, f):
        return F.normalize(f, dim=-1)

    def _scores(self, s, sy, q, n_way):
        from sklearn.linear_model import LogisticRegression

        out = torch.full((s.shape[0], q.shape[1], n_way), -1e9)
        for e in range(s.shape[0]):
            clf = LogisticRegression(C=self.C, max_iter=1000).fit(s[e].numpy(), sy[e].numpy())
            out[e][:, torch.as_tensor(clf.classes_)] = torch.from_numpy(clf.predict_log_proba(q[e].numpy())).float()
        return out


@register_strategy
class SupportFineTuneHead(_FrozenBaseline):
    """A new linear head fine-tuned on the support set of each episode, over frozen features.

    The head (initialised with N(0, 0.01²) weights, seeded) takes ``head_steps`` full-batch gradient steps of Adam on the support
    cross-entropy; all episodes are adapted at once as a batch of heads (E, D, N). This is the per-episode
    adaptation of Chen et al.'s "Baseline" (Chen, Liu, Kira, Wang & Huang, "A Closer Look at Few-shot
    Classification", ICLR 2019: 100 steps, lr 0.01); ``cosine=True`` gives their Baseline++ head.

    Args:
        head_steps: gradient steps per episode (Chen 2019: 100).
        head_lr: step size (Chen 2019: 0.01).
        cosine: cosine-similarity head with scale 10 (Baseline++) instead of a linear one.
        pretrain_on_base: first fine-tune the backbone on ``train`` with cross-entropy.

    Example:
        >>> SupportFineTuneHead(backbone="file:runs/pretrain", cosine=True).fit(base).evaluate(novel)
    """

    name = "support-finetune-head"

    def __init__(self, *, head_steps: int = 100, head_lr: float = 0.01, cosine: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.head_steps, self.head_lr, self.cosine = head_steps, head_lr, cosine

    def _validate_params(self):
        super()._validate_params()
        check_range("SupportFineTuneHead", "head_steps", self.head_steps, 1)
        check_range("SupportFineTuneHead", "head_lr", self.head_lr, 0, low_open=True)

    def _transform_features(self, f):
        return F.normalize(f, dim=-1)

    def _scores(self, s, sy, q, n_way):
        with torch.inference_mode(False), torch.enable_grad():
            s, sy, q = s.clone(), sy.clone(), q.clone()
            g = torch.Generator().manual_seed(self.seed)
            w = (0.01 * torch.randn(s.shape[0], s.shape[-1], n_way, generator=g)).requires_grad_(True)
            b = torch.zeros(s.shape[0], 1, n_way, requires_grad=True)
            opt = torch.optim.Adam([w, b], lr=self.head_lr)

            def logits(x):
                if self.cosine:
                    return 10.0 * F.normalize(x, dim=-1) @ F.normalize(w, dim=1)
                return x @ w + b

            for _ in range(self.head_steps):
                loss = F.cross_entropy(logits(s).reshape(-1, n_way), sy.reshape(-1), reduction="sum") / s.shape[1]
                opt.zero_grad()
                loss.backward()
                opt.step()
            return logits(q).detach()
