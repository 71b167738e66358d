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

from ...data import ImageDataset
from ...data.episodes import as_images, sample_episodes, support_set
from ...engine import extract_features, mean_confidence_interval
from ...errors import TransferkitError
from ...utils import count_parameters, seed_everything
from ..base import NeuralStrategy, warn_if_untrained


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
