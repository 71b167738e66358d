"""Two real datasets as a domain-adaptation pair: the same classes in the same order, one shared image size.

:func:`paired_domains` takes a source and a target (ImageDatasets or built-in names such as ``"digits"`` and
``"usps:train"``), puts the target's classes in the source's order (refusing class lists that differ, naming
the classes; :func:`transferkit.data.domains.align_classes`), and resamples both to one size, so
the pair goes straight into a domain-adaptation strategy::

    >>> from transferkit.data.pairs import paired_domains
    >>> from transferkit.strategies import create_strategy
    >>> src, tgt = paired_domains("digits", "usps:train", size=16)       # sklearn 8x8 digits -> USPS 16x16
    >>> _, tgt_test = paired_domains("digits", "usps:test", size=16)
    >>> dann = create_strategy("dann", input_size=16).fit(src, target=tgt.unlabelled(), target_test=tgt_test)

(On the command line: ``transferkit fit --strategy dann --data digits --target usps:train``; the backbone's
transform resizes both domains to its input size there.)
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import DataError, TransferkitError
from .dataset import ImageDataset
from .domains import align_classes


def _as_dataset(ds, role: str) -> ImageDataset:
    if isinstance(ds, ImageDataset):
        return ds
    if isinstance(ds, str):
        from .loaders import load_dataset

        return load_dataset(ds)
    raise TransferkitError(f"paired_domains: the {role} must be an ImageDataset or a dataset name; got {type(ds).__name__}.")


def _size_of(ds: ImageDataset):
    return tuple(ds.images.shape[1:3]) if ds.is_array else None


def resample(ds: ImageDataset, size: tuple[int, int]) -> ImageDataset:
    """``ds`` as a uint8 array dataset of ``size`` (H, W) (antialiased bilinear); channels kept
    (files: 1 channel if the first image is grayscale, else 3)."""
    if ds.is_array:
        arr = ds.images
    else:
        channels = 1 if _is_gray(ds) else 3
        arr = np.stack([np.asarray(ds.load_image(i, channels).resize(size[::-1])) for i in range(len(ds))])
    if tuple(arr.shape[1:3]) != tuple(size):
        gray = arr.ndim == 3
        x = torch.from_numpy(arr[..., None] if gray else arr).permute(0, 3, 1, 2).float()
        x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
        arr = x.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
        arr = np.ascontiguousarray(arr[..., 0] if gray else arr)
    return ImageDataset(arr, ds.labels.copy(), ds.classes, domains=ds.domains, extra=ds.extra,
                        semantics=ds.semantics, name=ds.name, root=ds.root)


def _is_gray(ds: ImageDataset) -> bool:
    from PIL import Image

    with Image.open(ds.images[0]) as im:
        return im.mode in ("1", "L", "LA", "I", "I;16", "F")


def paired_domains(source, target, *, size=None) -> tuple[ImageDataset, ImageDataset]:
    """(source, target) with the same class list and one image size; ``domains`` = each dataset's name.

    Args:
        source, target: ImageDatasets or built-in names (``"digits"``, ``"usps:train"``...).
        size: the shared (H, W) (an int for square); default the larger of the two array sizes
            (file datasets need it given).

    Labels are kept on both (hide the target's with ``target.unlabelled()``; keep a labelled copy for
    evaluation only). Raises a DataError naming the classes that differ.
    """
    source, target = _as_dataset(source, "source"), _as_dataset(target, "target")
    target = align_classes(source, target, "paired_domains")
    if size is None:
        sizes = [_size_of(source), _size_of(target)]
        if None in sizes:
            raise DataError("paired_domains: give size=... for datasets of image files (their sizes vary).")
        size = max(sizes, key=lambda s: s[0] * s[1])
    size = (int(size), int(size)) if np.isscalar(size) else tuple(int(v) for v in size)
    out = []
    for ds, default in ((source, "source"), (target, "target")):
        r = resample(ds, size)
        r.domains = np.full(len(r), ds.name or default)
        out.append(r)
    return out[0], out[1]
