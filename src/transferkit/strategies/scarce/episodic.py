"""Few-shot learning, the shared machinery: new classes from 1-5 labelled images each.

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

from ...backbones import Backbone
from ...data import ImageDataset
from ...data.episodes import as_images, sample_episodes, support_set
from ...engine import extract_features, infer, mean_confidence_interval
from ...errors import TransferkitError
from ...params import Interval
from ..base import NeuralStrategy
from ..frozen import FrozenFeatureStrategy


METRICS = ("euclidean", "cosine")
# The training episodes of ProtoNet and MAML: n_way classes, k_shot support and q_queries query images each.
EPISODE_CONSTRAINTS = {"n_way": [Interval(int, 2)], "k_shot": [Interval(int, 1)], "q_queries": [Interval(int, 1)],
                       "episodes_per_epoch": [Interval(int, 1)]}


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

class _Episodic:
    """Episodic evaluation and support-set prediction on top of an embedding network ``embedder``: what the
    meta-learned strategies (``_FewShot``: ProtoNet, MAML) and the frozen-feature baselines (``_FrozenBaseline``)
    share."""

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
            batches = [(x, None) for x in data.split(256)]
            f = infer(batches, net, device=next(net.parameters()).device, modules=(net,)) if len(data) else torch.zeros(0, 1)
        else:
            f = torch.from_numpy(np.array(self._raw_features(data, cache)))
        return self._transform_features(f.clone())

    def _raw_features(self, data: ImageDataset, cache: bool) -> np.ndarray:
        return extract_features(self.backbone_, data, cache=cache, progress=False, num_workers=self.num_workers)

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


class _FewShot(_Episodic, NeuralStrategy):
    """The meta-learned strategies: the embedding network trained through the Trainer (``NeuralStrategy``)."""

    def _tensor_state(self) -> dict:
        return {**{f"model.{k}": v for k, v in self.model_.state_dict().items()},
                "base_features": self.base_features_, "base_labels": self.base_labels_}

    def _restore(self, state: dict, tensors: dict) -> None:
        model = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
        super()._restore(state, model)
        self.base_features_, self.base_labels_ = tensors["base_features"], tensors["base_labels"]


# -- baselines on frozen features ------------------------------------------------------------------------

class _FrozenBaseline(_Episodic, FrozenFeatureStrategy):
    """A frozen backbone and a per-episode classifier on its cached features: the frozen-feature base's one ``fit``
    caches the base classes' features (for ``predict`` without a support set) and their mean. To train the backbone
    on the base classes first (Chen et al. 2019's "Baseline"), pass ``backbone=train_on_base(base, ...)``."""

    data_roles = ("train",)
    untrained_hint = ", or train it on the base classes first: backbone=train_on_base(base, backbone=..., epochs=...)"

    def _raw_features(self, data: ImageDataset, cache: bool) -> np.ndarray:
        """With the frozen-feature parameters (batch size, cache, device), as in ``fit``."""
        return extract_features(self.backbone_, data, batch_size=self.batch_size, cache=self.cache if cache else False,
                                device=self.device, num_workers=self.num_workers, progress=False)

    def fit_features(self, X: np.ndarray, y: np.ndarray, train: ImageDataset, **roles) -> None:
        raw = torch.from_numpy(np.array(X, dtype=np.float32))
        self.base_mean_ = raw.mean(0)
        self.base_features_ = self._transform_features(raw.clone())
        self.base_labels_ = torch.from_numpy(train.labels.copy())

    def _tensor_state(self) -> dict:
        return {**super()._tensor_state(), "base_features": self.base_features_, "base_labels": self.base_labels_,
                "base_mean": self.base_mean_}

    def _restore(self, state: dict, tensors: dict) -> None:
        # saved before the frozen-feature base: the backbone inside a classifier, under 'model.backbone.'
        old = {"backbone." + k[len("model.backbone."):]: v for k, v in tensors.items() if k.startswith("model.backbone.")}
        super()._restore(state, {**tensors, **old})
        self.base_features_, self.base_labels_ = tensors["base_features"], tensors["base_labels"]
        self.base_mean_ = tensors["base_mean"]


class _BaseClassifier(NeuralStrategy):
    """Backbone + linear head trained by cross-entropy on the base classes (not registered: see train_on_base)."""

    name = "base-classifier"
    family = "scarce-data"


def train_on_base(base: ImageDataset, **params) -> Backbone:
    """Chen et al. 2019's "Baseline" pre-training for the frozen few-shot baselines: train a backbone with a linear
    head on the base classes by cross-entropy through the Trainer (``params``: any training parameter, ``backbone``,
    ``epochs``, ``lr``...) and return the trained backbone, to pass as ``backbone=``.

    Example:
        >>> SimpleShot(backbone=train_on_base(base, backbone="builtin:small-cnn", pretrained=False, epochs=10)).fit(base)
    """
    return _BaseClassifier(**params).fit(base).backbone_.eval()
