"""MNIST handwritten digits (LeCun, Bottou, Bengio, Haffner 1998), read from the official IDX files.

``train`` 60,000 and ``test`` 10,000 images, 28x28 grayscale (white ink on black), classes '0'..'9' (the same
names and order as ``digits`` and ``usps``, so they pair for domain adaptation, MNIST <-> USPS as in TLlib's
digits table). Looked up as ``mnist/<file>`` (``t10k-images-idx3-ubyte.gz`` and its labels file for
``test``; ``train-...`` for ``train``), gzipped or not, in ``root``, ``$TRANSFERKIT_DATA`` and the user cache,
then downloaded with torchvision's ``MNIST``.
"""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from ...errors import DataError
from ..dataset import ImageDataset
from ..registry import data_roots, download_target, not_found, register_dataset

FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
CLASSES = [str(i) for i in range(10)]
SOURCE = "http://yann.lecun.com/exdb/mnist/"
_MAGIC = {2049: 1, 2051: 3}  # IDX magic numbers of unsigned-byte label (1-d) and image (3-d) files


def read_idx(path) -> np.ndarray:
    """The uint8 array of an IDX file (``.gz`` or plain), checked against its header."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise DataError(f"{path} is not a readable IDX file ({e}).") from None
    magic = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else -1
    if magic not in _MAGIC:
        raise DataError(f"{path}: not an unsigned-byte IDX file (magic number {magic}; expected 2049 or 2051).")
    ndim = _MAGIC[magic]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise DataError(f"{path}: the header announces {shape} ({int(np.prod(shape))} bytes), the file holds "
                        f"{data.size}; it is truncated or corrupt.")
    return data.reshape(shape)


def _find(split: str, root) -> list[Path] | None:
    """Both files of ``split`` from the first data root that holds them (as ``mnist/`` or torchvision's
    ``MNIST/raw/``, each gzipped or not)."""
    for r in data_roots(root):
        for folder in (r / "mnist", r / "MNIST" / "raw", r):
            found = [next((p for p in (folder / f"{name}.gz", folder / name) if p.is_file()), None)
                     for name in FILES[split]]
            if None not in found:
                return found
    return None


@register_dataset("mnist", description="MNIST handwritten digits, 28x28, train 60,000 / test 10,000, classes "
                  "'0'..'9' (as 'digits' and 'usps')", splits=("train", "test"), default_split="test",
                  source="torchvision.datasets.MNIST; " + SOURCE)
def load_mnist(split: str = "test", root=None, download: bool = True, on_error: str = "raise") -> ImageDataset:
    """MNIST ``split`` ('train' or 'test') as a uint8 array dataset (N, 28, 28), classes '0'..'9'.

    ``on_error`` is accepted for the CLI's ``--on-error`` (arrays have no unreadable files).
    """
    files = _find(split, root)
    if files is None and download:
        try:
            target = download_target("mnist")
            from torchvision.datasets import MNIST

            MNIST(str(target), train=split == "train", download=True)
            files = _find(split, target)
        except Exception:  # offline
            files = None
    if files is None:
        raise not_found("mnist", f"mnist/{FILES[split][0]}.gz",
                        f"Run once with network access (torchvision's MNIST downloads it), or put the official "
                        f"IDX files {FILES[split][0]}.gz and {FILES[split][1]}.gz in a 'mnist' folder.")
    images, labels = read_idx(files[0]), read_idx(files[1])
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(f"{files[0]} and {files[1]}: expected (N, H, W) images and N labels; got {images.shape} "
                        f"and {labels.shape}.")
    if len(labels) and labels.max() > 9:
        raise DataError(f"{files[1]}: labels must be 0-9; got {int(labels.max())}.")
    return ImageDataset(np.ascontiguousarray(images), labels.astype(np.int64), CLASSES, name=f"mnist-{split}",
                        root=str(files[0].parent))
