"""Two domains of one task: the one class rule, and splitting a dataset by its domain column.

The rule (:func:`align_classes`): the target must have the source's classes. The same classes in another order are
relabelled to the source's order; different classes are one error naming what is only on each side; a target
without class names (an unlabelled CSV) is taken as it is. Domain adaptation's ``fit`` and
:func:`transferkit.data.pairs.paired_domains` both apply it.
"""
from __future__ import annotations

import numpy as np

from ..errors import DataError, TransferkitError, check_choice
from .dataset import ImageDataset


def align_classes(source: ImageDataset, target: ImageDataset, owner: str = "domain adaptation",
                  role: str = "target") -> ImageDataset:
    """``target`` with its labels in the source's class order; raise a DataError naming the classes that differ."""
    if not isinstance(target, ImageDataset):
        raise TransferkitError(f"{owner}: the {role!r} role must be an ImageDataset; got {type(target).__name__}.")
    if not target.classes or list(target.classes) == list(source.classes):
        return target
    a, b = set(source.classes), set(target.classes)
    if a != b:
        sa, sb = f" ({source.name})" if source.name else "", f" ({target.name})" if target.name else ""
        raise DataError(f"{owner}: the {role} must have the source's classes; only in the source{sa}: "
                        f"{sorted(a - b)}, only in the {role}{sb}: {sorted(b - a)}.")
    remap = {i: source.classes.index(c) for i, c in enumerate(target.classes)}
    return target.subset(np.arange(len(target)), classes=list(source.classes), relabel=remap)


def split_domains(ds: ImageDataset, source: str, target: str) -> tuple[ImageDataset, ImageDataset]:
    """(source, target) from one dataset with a domain column (e.g. a CSV with ``domain``)."""
    if ds.domains is None:
        raise DataError(f"{ds.name or 'The dataset'} has no domain column; give source and target separately, "
                        f"or a CSV with a 'domain' column.")
    present = sorted(set(ds.domains.tolist()))
    for role, value in (("source", source), ("target", target)):
        check_choice("split_domains", role, value, present)
    return (ds.subset(np.flatnonzero(ds.domains == source)), ds.subset(np.flatnonzero(ds.domains == target)))
