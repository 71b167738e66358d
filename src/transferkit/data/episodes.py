"""N-way K-shot episodes (Vinyals et al. 2016; Snell et al. 2017), validated before they start."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DataError, check_range


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

    Raises before sampling if fewer than ``n_way`` classes have ``k_shot + q_queries`` images,
    naming the classes and their counts.
    """

    def __init__(self, labels, n_way: int = 5, k_shot: int = 5, q_queries: int = 15, episodes: int = 600,
                 seed: int = 0, class_names=None):
        labels = np.asarray(getattr(labels, "labels", labels)).reshape(-1)
        for name, v, lo in (("n_way", n_way, 2), ("k_shot", k_shot, 1), ("q_queries", q_queries, 1), ("episodes", episodes, 1)):
            check_range("EpisodeSampler", name, v, lo)
        self.n_way, self.k_shot, self.q_queries, self.episodes, self.seed = n_way, k_shot, q_queries, episodes, seed
        need = k_shot + q_queries
        present = np.unique(labels[labels >= 0])
        self.by_class = {int(c): np.flatnonzero(labels == c) for c in present}
        self.eligible = np.array([c for c, idx in self.by_class.items() if len(idx) >= need])
        if len(self.eligible) < n_way:
            name = (lambda c: class_names[c]) if class_names is not None else (lambda c: c)
            counts = {name(c): len(idx) for c, idx in self.by_class.items()}
            raise DataError(
                f"Cannot draw {n_way}-way {k_shot}-shot episodes with {q_queries} queries: each class needs "
                f"{need} images and only {len(self.eligible)} of {len(counts)} classes have that many. "
                f"Images per class: {counts}.")

    def __len__(self) -> int:
        return self.episodes

    def __iter__(self):
        rng = np.random.default_rng(self.seed)
        for _ in range(self.episodes):
            classes = rng.choice(self.eligible, size=self.n_way, replace=False)
            s, q = [], []
            for c in classes:
                pick = rng.choice(self.by_class[int(c)], size=self.k_shot + self.q_queries, replace=False)
                s.append(pick[:self.k_shot])
                q.append(pick[self.k_shot:])
            yield Episode(np.concatenate(s), np.repeat(np.arange(self.n_way), self.k_shot),
                          np.concatenate(q), np.repeat(np.arange(self.n_way), self.q_queries), classes)
