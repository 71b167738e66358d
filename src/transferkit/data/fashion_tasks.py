"""Built-in extra tasks for Fashion-MNIST (the task-sequence splitter moved to :mod:`transferkit.data.splits`).

Fashion-MNIST (Xiao et al. 2017) has one label: the garment class. For multi-task learning this module
derives further label columns from it (and from the pixels), stored in ``ImageDataset.extra``:

``category``   super-category: 0 top (T-shirt/top, Pullover, Coat, Shirt), 1 bottom (Trouser),
               2 one-piece (Dress), 3 footwear (Sandal, Sneaker, Ankle boot), 4 bag (Bag).
``sleeves``    attribute 'has sleeves': 1 for T-shirt/top, Pullover, Coat, Shirt; 0 for Trouser,
               footwear and Bag; *missing* (NaN) for Dress, which comes both with and without sleeves,
               so the column exercises masked multi-task losses on real data.
``ink``        regression target: the fraction of the 28x28 canvas covered by the garment (pixels > 0.1),
               a size proxy measured from the image itself.

Example:
    >>> from transferkit.data import load_fashion_mnist
    >>> ds = add_fashion_tasks(load_fashion_mnist("test"))
    >>> sorted(ds.extra), FASHION_TASK_KINDS["ink"]
    (['category', 'ink', 'sleeves'], 'regression')
"""
from __future__ import annotations

import copy

import numpy as np

from ..errors import DataError
from .dataset import ImageDataset
from .loaders import FASHION_CLASSES

FASHION_SUPERCATEGORIES = ["top", "bottom", "one-piece", "footwear", "bag"]
# garment class index -> super-category index
FASHION_CATEGORY_OF = np.array([0, 1, 0, 2, 0, 3, 0, 3, 4, 3], dtype=np.float64)
# garment class index -> has sleeves (NaN: unknown / both exist)
FASHION_SLEEVES_OF = np.array([1, 0, 1, np.nan, 1, 0, 1, 0, 0, 0], dtype=np.float64)
FASHION_TASK_KINDS = {"label": "classification", "category": "classification", "sleeves": "classification",
                      "ink": "regression"}
FASHION_TASK_CLASSES = {"category": FASHION_SUPERCATEGORIES, "sleeves": ["no sleeves", "sleeves"]}


def fashion_task_columns(ds: ImageDataset) -> dict[str, np.ndarray]:
    """The extra label columns of a Fashion-MNIST dataset: ``category``, ``sleeves``, ``ink`` (N,) each."""
    if list(ds.classes) != FASHION_CLASSES:
        raise DataError(f"fashion_task_columns needs the 10 Fashion-MNIST classes {FASHION_CLASSES}; "
                        f"{ds.name or 'the dataset'} has {ds.classes}.")
    if not ds.is_array:
        raise DataError("fashion_task_columns needs an array dataset (load_fashion_mnist); got image files.")
    labels = ds.labels
    known = labels >= 0
    category = np.full(len(ds), np.nan)
    sleeves = np.full(len(ds), np.nan)
    category[known] = FASHION_CATEGORY_OF[labels[known]]
    sleeves[known] = FASHION_SLEEVES_OF[labels[known]]
    img = ds.images.reshape(len(ds), -1)
    ink = (img > 25).mean(1).astype(np.float64)
    return {"category": category, "sleeves": sleeves, "ink": ink}


def add_fashion_tasks(ds: ImageDataset) -> ImageDataset:
    """A copy of a Fashion-MNIST dataset with the ``category``, ``sleeves`` and ``ink`` columns added."""
    out = copy.copy(ds)
    out.extra = {**ds.extra, **fashion_task_columns(ds)}
    return out
