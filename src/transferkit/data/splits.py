"""Stratified splits, k-per-class subsets, class splits (seen/unseen, base/novel) and class-split task sequences."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import DataError, check_range
from .dataset import ImageDataset


def stratified_split(ds: ImageDataset, test_size: float | int = 0.2, seed: int = 0):
    """(train, test) with class proportions kept; every class needs at least 2 images."""
    from sklearn.model_selection import train_test_split

    labelled = np.flatnonzero(ds.labels >= 0)
    counts = np.bincount(ds.labels[labelled], minlength=ds.num_classes)
    small = {ds.classes[c]: int(n) for c, n in enumerate(counts) if 0 < n < 2}
    if small:
        raise DataError(f"{ds.name}: a stratified split needs at least 2 images per class; "
                        f"these classes have fewer: {small}.")
    try:
        tr, te = train_test_split(labelled, test_size=test_size, random_state=seed, stratify=ds.labels[labelled])
    except ValueError as e:
        raise DataError(f"{ds.name}: cannot split {len(labelled)} images with test_size={test_size}: {e}") from None
    return ds.subset(np.sort(tr)), ds.subset(np.sort(te))


def k_per_class(ds: ImageDataset, k: int, seed: int = 0, *, strict: bool = True) -> ImageDataset:
    """A subset with ``k`` images of every class (fewer raise, or are all taken with ``strict=False``)."""
    rng = np.random.default_rng(seed)
    counts = ds.class_counts()
    short = {c: n for c, n in counts.items() if 0 < n < k}
    if short and strict:
        raise DataError(f"{ds.name}: k_per_class(k={k}) needs {k} images per class; these have fewer: {short}.")
    chosen = []
    for c in range(ds.num_classes):
        idx = np.flatnonzero(ds.labels == c)
        chosen.append(rng.choice(idx, size=min(k, len(idx)), replace=False))
    return ds.subset(np.sort(np.concatenate(chosen)))


def class_split(ds: ImageDataset, first: Sequence[str | int] | float, seed: int = 0):
    """Split by class: (dataset of ``first`` classes, dataset of the others), labels renumbered.

    ``first`` is a list of class names/indices, or a fraction of classes drawn with ``seed``.
    """
    if isinstance(first, float):
        rng = np.random.default_rng(seed)
        n = max(1, min(ds.num_classes - 1, round(first * ds.num_classes)))
        a = sorted(rng.choice(ds.num_classes, size=n, replace=False).tolist())
    else:
        a = []
        for c in first:
            if isinstance(c, str):
                if c not in ds.classes:
                    raise DataError(f"class_split: {c!r} is not a class of {ds.name}; classes: {ds.classes}.")
                a.append(ds.classes.index(c))
            else:
                a.append(int(c))
        a = sorted(set(a))
    b = [c for c in range(ds.num_classes) if c not in a]
    if not a or not b:
        raise DataError(f"class_split: both sides need at least one class; got {len(a)} and {len(b)}.")
    return _restrict(ds, a), _restrict(ds, b)


def restrict_classes(ds: ImageDataset, classes: Sequence[int]) -> ImageDataset:
    return _restrict(ds, list(classes))


def _restrict(ds: ImageDataset, keep: list[int]) -> ImageDataset:
    idx = np.flatnonzero(np.isin(ds.labels, keep))
    relabel = {old: new for new, old in enumerate(keep)}
    out = ds.subset(idx, classes=[ds.classes[c] for c in keep], relabel=relabel)
    if ds.semantics and "attributes" in ds.semantics and "classes" not in ds.semantics:  # (named rows stay)
        sem = dict(ds.semantics)
        sem["attributes"] = np.asarray(sem["attributes"])[keep]
        out.semantics = sem
    return out


def task_sequence(ds: ImageDataset, n_tasks: int = 5, *, classes_per_task: int | None = None,
                  order=None) -> list[ImageDataset]:
    """Split a dataset by class into ``n_tasks`` disjoint tasks (labels renumbered 0..k-1 per task).

    The standard 'split' continual-learning benchmark (Split MNIST, Zenke et al. 2017): Fashion-MNIST
    with ``n_tasks=5`` gives the tasks (T-shirt, Trouser), (Pullover, Dress), ... in class order, or in
    ``order`` (a permutation of class indices).

    Example:
        >>> tasks = task_sequence(load_fashion_mnist("test"), 5)
        >>> [t.classes for t in tasks][0]
        ['T-shirt/top', 'Trouser']
    """
    check_range("task_sequence", "n_tasks", n_tasks, 2, ds.num_classes // 2)
    order = list(range(ds.num_classes)) if order is None else [int(c) for c in order]
    if sorted(order) != list(range(ds.num_classes)) and classes_per_task is None:
        raise DataError(f"task_sequence: 'order' must be a permutation of 0..{ds.num_classes - 1}; got {order}.")
    k = classes_per_task or ds.num_classes // n_tasks
    check_range("task_sequence", "classes_per_task", k, 2, len(order) // n_tasks)
    tasks = []
    for t in range(n_tasks):
        part = restrict_classes(ds, order[t * k:(t + 1) * k])
        part.name = f"{ds.name}-task{t}"
        tasks.append(part)
    return tasks
