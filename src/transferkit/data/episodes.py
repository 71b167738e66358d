"""N-way K-shot episodes (Vinyals et al. 2016; Snell et al. 2017), validated before they start; the episodic train
loader; few-shot image and support-set coercion."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import DataError, TransferkitError, check_range
from .dataset import ImageDataset, collate


@dataclass
class Episode:
    """Indices into the dataset and episode-local labels 0..n_way-1.

    support (n_way*k_shot,), support_labels (same), query (n_way*q_queries,), query_labels, classes (n_way,).
    """
    support: np.ndarray
    support_labels: np.ndarray
    query: np.ndarray
    query_labels: np.ndarray
    classes: np.ndarray


class EpisodeSampler:
    """Draw ``episodes`` seeded N-way K-shot Q-query episodes from integer labels (or a dataset).

    ``groups`` (one name per image, e.g. a dataset's ``domains``) draws each episode's classes from a single group:
    Lake et al.'s (2015) within-alphabet one-shot protocol on Omniglot, harder than classes drawn from anywhere.
    Each episode picks a group uniformly among those with at least ``n_way`` usable classes, then ``n_way`` of
    its classes. Without ``groups`` the draw (and its random stream) is the plain one.

    Raises before sampling if fewer than ``n_way`` classes (in any one group, with ``groups``) have
    ``k_shot + q_queries`` images, naming the classes and their counts.
    """

    def __init__(self, labels, n_way: int = 5, k_shot: int = 5, q_queries: int = 15, episodes: int = 600,
                 seed: int = 0, class_names=None, groups=None):
        labels = np.asarray(getattr(labels, "labels", labels)).reshape(-1)
        for name, v, lo in (("n_way", n_way, 2), ("k_shot", k_shot, 1), ("q_queries", q_queries, 1), ("episodes", episodes, 1)):
            check_range("EpisodeSampler", name, v, lo)
        self.n_way, self.k_shot, self.q_queries, self.episodes, self.seed = n_way, k_shot, q_queries, episodes, seed
        need = k_shot + q_queries
        present = np.unique(labels[labels >= 0])
        self.by_class = {int(c): np.flatnonzero(labels == c) for c in present}
        self.eligible = np.array([c for c, idx in self.by_class.items() if len(idx) >= need])
        if len(self.eligible) < n_way:
            raise DataError(self._cannot_draw(class_names))
        self.pools = None if groups is None else self._group_pools(labels, groups, class_names)

    def _group_pools(self, labels, groups, class_names) -> list[np.ndarray]:
        """The usable classes of each group that has at least ``n_way`` of them; a class must lie in one group."""
        groups = np.asarray(groups).astype(str).reshape(-1)
        if len(groups) != len(labels):
            raise DataError(f"EpisodeSampler: groups has {len(groups)} entries for {len(labels)} labels.")
        name = (lambda c: class_names[c]) if class_names is not None else (lambda c: c)
        by_group: dict[str, list[int]] = {}
        for c in self.eligible:
            g = np.unique(groups[self.by_class[int(c)]])
            if len(g) > 1:
                raise DataError(f"Class {name(int(c))} spans several groups ({', '.join(g[:4])}): episodes within "
                                f"one group need every class inside one group.")
            by_group.setdefault(str(g[0]), []).append(int(c))
        pools = [np.array(cs) for _, cs in sorted(by_group.items()) if len(cs) >= self.n_way]
        if not pools:
            sizes = ", ".join(f"{g} {len(cs)}" for g, cs in sorted(by_group.items(), key=lambda t: -len(t[1])))
            raise DataError(f"Cannot draw {self.n_way}-way episodes within one group: no group has {self.n_way} "
                            f"classes with {self.k_shot + self.q_queries} images (usable classes per group: {sizes}). "
                            f"Set n_way to at most {max(len(cs) for cs in by_group.values())}, or draw across groups.")
        return pools

    def _cannot_draw(self, class_names) -> str:
        """Why no episode can be drawn, with the images per class summarised and the settings that would work."""
        name = (lambda c: class_names[c]) if class_names is not None else (lambda c: c)
        counts = sorted(((len(idx), name(c)) for c, idx in self.by_class.items()), key=lambda t: (t[0], str(t[1])))
        sizes = np.array([n for n, _ in counts])
        need = self.k_shot + self.q_queries
        msg = (f"Cannot draw {self.n_way}-way {self.k_shot}-shot episodes with {self.q_queries} queries: each class "
               f"needs {need} images and only {len(self.eligible)} of {len(counts)} classes have that many (images "
               + (f"per class: {sizes.min()} each" if sizes.min() == sizes.max() else
                  f"per class: {sizes.min()} to {sizes.max()}, median {np.median(sizes):g}; fewest: "
                  + ", ".join(f"{c} {n}" for n, c in counts[:5])) + ").")
        fixes = []
        if len(sizes) >= self.n_way:
            room = int(np.sort(sizes)[-self.n_way])  # the n_way-th fullest class bounds k_shot + q_queries
            if room - self.k_shot >= 1:
                fixes.append(f"q_queries={room - self.k_shot} (with k_shot={self.k_shot})")
            if room >= 2:
                fixes.append(f"k_shot + q_queries <= {room}")
        if len(self.eligible) >= 2:
            fixes.append(f"n_way={len(self.eligible)}")
        hint = (" Set " + " or ".join(fixes) + " (on the command line: -p q_queries=..., -p k_shot=..., -p n_way=...)"
                if fixes else " Give more images per class")
        return (msg + hint + "; or keep every image for training: a separate --test set takes no hold-out, and "
                "--test-fraction sets its size.")

    def __len__(self) -> int:
        return self.episodes

    def __iter__(self):
        rng = np.random.default_rng(self.seed)
        for _ in range(self.episodes):
            pool = self.eligible if self.pools is None else self.pools[rng.integers(len(self.pools))]
            classes = rng.choice(pool, size=self.n_way, replace=False)
            s, q = [], []
            for c in classes:
                pick = rng.choice(self.by_class[int(c)], size=self.k_shot + self.q_queries, replace=False)
                s.append(pick[:self.k_shot])
                q.append(pick[self.k_shot:])
            yield Episode(np.concatenate(s), np.repeat(np.arange(self.n_way), self.k_shot),
                          np.concatenate(q), np.repeat(np.arange(self.n_way), self.q_queries), classes)


def sample_episodes(labels, *, n_way: int = 5, k_shot: int = 5, q_queries: int = 15, episodes: int = 600,
                    seed: int = 0, class_names=None, groups=None) -> dict[str, np.ndarray]:
    """Index arrays of ``episodes`` episodes, validated before sampling (see :class:`EpisodeSampler`; ``groups``
    draws each episode within one group).

    Returns ``support`` (E, n_way*k_shot), ``support_labels`` (same, episode-local 0..n_way-1),
    ``query`` (E, n_way*q_queries), ``query_labels``, ``classes`` (E, n_way).
    """
    eps = list(EpisodeSampler(labels, n_way, k_shot, q_queries, episodes, seed, class_names=class_names, groups=groups))
    return {k: np.stack([getattr(e, k) for e in eps]) for k in
            ("support", "support_labels", "query", "query_labels", "classes")}


class EpisodeLoader:
    """The train loader of episodic strategies: an iterable of ``episodes`` episode batches per epoch.

    Each item is ``(support_x, support_y, query_x, query_y)`` with shapes (T, N*K, C, H, W), (T, N*K),
    (T, N*Q, C, H, W), (T, N*Q): ``T = meta_batch`` episodes drawn by :class:`EpisodeSampler` with a seed
    that depends only on (seed, epoch), so resuming replays the same episodes. Validates class sizes
    when built.
    """

    def __init__(self, dataset: ImageDataset, *, n_way: int, k_shot: int, q_queries: int, episodes: int,
                 meta_batch: int = 1, seed: int = 0):
        self.dataset, self.n_way, self.k_shot, self.q_queries = dataset, n_way, k_shot, q_queries
        self.episodes, self.meta_batch, self.seed, self.epoch = episodes, meta_batch, seed, 0
        EpisodeSampler(dataset.labels, n_way, k_shot, q_queries, 1, seed, class_names=dataset.classes)  # validate

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.episodes

    def __iter__(self):
        sampler = EpisodeSampler(self.dataset.labels, self.n_way, self.k_shot, self.q_queries,
                                 self.episodes * self.meta_batch, self.seed * 1_000_003 + self.epoch)
        group = []
        for e in sampler:
            group.append(e)
            if len(group) == self.meta_batch:
                yield (torch.stack([episode_images(self.dataset, g.support) for g in group]),
                       torch.stack([torch.from_numpy(g.support_labels) for g in group]),
                       torch.stack([episode_images(self.dataset, g.query) for g in group]),
                       torch.stack([torch.from_numpy(g.query_labels) for g in group]))
                group = []


def episode_images(ds: ImageDataset, idx) -> torch.Tensor:
    """The transformed images ``ds[idx]`` as one (len(idx), C, H, W) tensor."""
    return collate(ds.__getitems__(np.asarray(idx)))[0]


def as_images(images, owner: str) -> ImageDataset | torch.Tensor:
    """Unlabelled images as an ImageDataset, or a [0, 1] tensor (N, C, H, W) as it is: from an ImageDataset, such a
    tensor, a uint8 array (N, H, W[, C]) or a list of file paths; anything else is one error naming ``owner``."""
    if isinstance(images, (ImageDataset, torch.Tensor)):
        if isinstance(images, torch.Tensor) and images.dim() != 4:
            raise TransferkitError(f"{owner}: image tensors must be (N, C, H, W) in [0, 1]; got shape {tuple(images.shape)}.")
        return images
    if isinstance(images, np.ndarray):
        from .loaders import from_arrays

        return from_arrays(images, np.zeros(len(images), np.int64), ["?"], name="images")
    if isinstance(images, (list, tuple)) and all(isinstance(p, str) or hasattr(p, "__fspath__") for p in images):
        return ImageDataset(list(images), np.zeros(len(images), np.int64), ["?"], name="images")
    raise TransferkitError(f"{owner}: images must be an ImageDataset, a (N, C, H, W) tensor in [0, 1], a uint8 array "
                           f"(N, H, W[, C]) or a list of file paths; got {type(images).__name__}.")


def support_set(support, owner: str):
    """A few-shot support set ``(images, labels)`` -> (images as :func:`as_images`, labels 0..n-1 as a tensor,
    the classes in ``np.unique`` order); labels may be any values (e.g. strings)."""
    if not (isinstance(support, (tuple, list)) and len(support) == 2):
        raise TransferkitError(f"{owner}: 'support' must be a pair (images, labels); got {type(support).__name__}.")
    images, labels = support
    labels = np.asarray(getattr(labels, "labels", labels)).reshape(-1)
    classes, y = np.unique(labels, return_inverse=True)
    n = len(images)
    if len(y) != n:
        raise DataError(f"{owner}: the support set has {n} images but {len(y)} labels.")
    if len(classes) < 2:
        raise DataError(f"{owner}: the support set needs at least 2 classes; got {classes.tolist()}.")
    return as_images(images, owner), torch.from_numpy(y), classes
