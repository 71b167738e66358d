"""USPS handwritten digits (Hull, "A database for handwritten text recognition research", TPAMI 1994).

``train`` 7,291 and ``test`` 2,007 images, 16x16 grayscale (white ink on black, as scikit-learn's
``digits``), classes '0'..'9' (the same names and order as the built-in ``digits`` dataset, so the two
pair for domain adaptation: :func:`transferkit.data.pairs.paired_domains`).

Read from the common h5 packaging (``usps/usps.h5``: ``train/data`` (N, 256) floats in [0, 1] and
``train/target``; the same for ``test``; needs ``h5py``: ``pip install transferkit[data]``), or from the
original bz2 files that torchvision's ``USPS`` downloads (``usps.bz2``, ``usps.t.bz2``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import DataError
from ..dataset import ImageDataset
from ..registry import download_target, find_local, not_found, register_dataset

H5 = "usps/usps.h5"
BZ2 = {"train": "usps.bz2", "test": "usps.t.bz2"}
CLASSES = [str(i) for i in range(10)]  # as the 'digits' dataset (loaders.load_digits)
SOURCE = "https://www.csie.ntu.edu.tw/~cjlin/libsvmtools/datasets/multiclass.html#usps"


def read_usps_h5(path, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 16, 16), labels int64 (N,)) of ``split`` from an h5 file with ``<split>/data``
    (N, 256) floats in [0, 1] and ``<split>/target`` (N,) labels 0-9."""
    try:
        import h5py
    except ImportError:
        raise DataError(f"Reading {path} needs h5py: pip install transferkit[data] (or pip install h5py).") from None
    try:
        with h5py.File(path, "r") as f:
            if f"{split}/data" not in f or f"{split}/target" not in f:
                raise DataError(f"{path}: no '{split}/data' and '{split}/target' datasets; the file holds "
                                f"{sorted(f.keys())}.")
            data, target = np.asarray(f[f"{split}/data"], dtype=np.float64), np.asarray(f[f"{split}/target"])
    except OSError as e:
        raise DataError(f"{path} is not a readable h5 file ({e}).") from None
    n = len(data)
    if data.ndim != 2 or data.shape[1] != 256 or len(target) != n:
        raise DataError(f"{path}: '{split}/data' must be (N, 256) with N labels; got {data.shape} and {target.shape}.")
    if n and (not np.isfinite(data).all() or data.min() < 0 or data.max() > 1):
        raise DataError(f"{path}: '{split}/data' must hold floats in [0, 1].")
    labels = target.astype(np.int64).reshape(-1)
    if n and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"{path}: '{split}/target' labels must be 0-9; got {sorted(set(labels.tolist()) - set(range(10)))[:10]}.")
    return np.round(data * 255).astype(np.uint8).reshape(n, 16, 16), labels


def _torchvision(split: str, root: Path, download: bool):
    from torchvision.datasets import USPS

    d = USPS(str(root), train=split == "train", download=download)
    return np.asarray(d.data, dtype=np.uint8), np.asarray(d.targets, dtype=np.int64)


def _find_bz2(split: str, root) -> Path | None:
    for rel in (f"usps/{BZ2[split]}", BZ2[split]):
        where = find_local(rel, root)
        if where is not None and where.is_file():
            return where.parent
    return None


@register_dataset("usps", description="USPS handwritten digits, 16x16, train 7,291 / test 2,007, classes '0'..'9' "
                  "(as 'digits')", splits=("train", "test"), default_split="train",
                  source="torchvision.datasets.USPS; " + SOURCE)
def load_usps(split: str = "train", root=None, download: bool = True, on_error: str = "raise") -> ImageDataset:
    """USPS ``split`` ('train' or 'test') as a uint8 array dataset (N, 16, 16), classes '0'..'9'.

    Looked up as ``usps/usps.h5`` (or torchvision's ``usps.bz2`` / ``usps.t.bz2``) in ``root``,
    ``$TRANSFERKIT_DATA`` and the user cache, then downloaded with torchvision. ``on_error`` is accepted
    for the CLI's ``--on-error`` (arrays have no unreadable files).
    """
    h5 = find_local(H5, root)
    if h5 is not None and h5.is_file():
        images, labels = read_usps_h5(h5, split)
        where = h5
    elif (bz := _find_bz2(split, root)) is not None:
        images, labels = _torchvision(split, bz, download=False)
        where = bz
    else:
        where = None
        if download:
            try:
                target = download_target("usps")
                images, labels = _torchvision(split, target, download=True)
                where = target
            except Exception:  # offline
                where = None
        if where is None:
            raise not_found("usps", H5, f"Run once with network access (torchvision's USPS downloads {BZ2[split]}), "
                                        f"or get the h5 packaging ({split}/data, {split}/target).")
    return ImageDataset(images, labels, CLASSES, name=f"usps-{split}", root=str(where))
