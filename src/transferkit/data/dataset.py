"""ImageDataset: a labelled image collection (files or arrays) that every strategy consumes."""
from __future__ import annotations

import copy
import os
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from ..errors import DataError, ImageLoadError
from ..utils import fingerprint
from .images import array_to_chw, open_image, preprocess, to_mode


class ImageDataset(torch.utils.data.Dataset):
    """Images with integer labels and class names, plus optional domains, extra labels and semantics.

    Args:
        images: a list of file paths, or a uint8 array (N, H, W) / (N, H, W, C).
        labels: (N,) integers in ``[0, len(classes))``; -1 marks an unlabelled image.
        classes: class names, index = label.
        domains: optional (N,) domain names (domain adaptation).
        extra: optional extra label columns, name -> (N,) array (multi-task learning); -1 or NaN = missing.
        semantics: optional class semantics (``{"attributes": (n_classes, M) array, "attribute_names": [...],
            "descriptions": {class: [sentences]}}``) for zero-shot learning.
        transform: applied on access; an :class:`ImageTransform` enables the vectorised array path.
        preprocess: what a loader did to the source files before they became these images
            (``{"invert": bool, "size": [H, W], "resample": "box"}``, see :func:`~transferkit.data.images.preprocess`).
            A model records it from its training data and applies it to raw files it is given later (the idea of
            timm's ``pretrained_cfg`` and of Hugging Face's saved image processors); on arrays, already
            preprocessed, it is not applied again.

    Items are ``(image, label)``: image a (C, H, W) float tensor in [0, 1] once a transform is set.
    """

    def __init__(self, images, labels, classes: Sequence[str], *, domains=None, extra=None, semantics=None,
                 name: str = "", root: str | None = None, transform=None, preprocess: dict | None = None):
        self.images = images if isinstance(images, np.ndarray) else [str(p) for p in images]
        self.labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        self.classes = [str(c) for c in classes]
        self.domains = None if domains is None else np.asarray(domains).astype(str)
        self.extra = {k: np.asarray(v) for k, v in (extra or {}).items()}
        self.semantics = semantics
        self.name, self.root, self.transform = name, root, transform
        self.preprocess = dict(preprocess or {})
        self._validate()

    def _validate(self) -> None:
        n = len(self.images)
        if len(self.labels) != n:
            raise DataError(f"Dataset {self.name or ''}: {n} images but {len(self.labels)} labels.")
        bad = self.labels[(self.labels < -1) | (self.labels >= len(self.classes))]
        if bad.size:
            raise DataError(
                f"Dataset {self.name or ''}: labels {sorted(set(bad.tolist()))[:10]} are outside the class list "
                f"(0..{len(self.classes) - 1} for {self.classes[:10]}{'...' if len(self.classes) > 10 else ''}).")
        for key, col in [("domains", self.domains), *self.extra.items()]:
            if col is not None and len(col) != n:
                raise DataError(f"Dataset {self.name or ''}: column {key!r} has {len(col)} values for {n} images.")
        if isinstance(self.images, np.ndarray):
            if self.images.dtype != np.uint8:
                raise DataError(f"Image arrays must be uint8 in [0, 255]; got dtype {self.images.dtype}.")
            shape = self.images.shape
            if self.images.ndim not in (3, 4) or (self.images.ndim == 4 and shape[-1] not in (1, 2, 3, 4)):
                raise DataError(f"Dataset {self.name or ''}: image arrays must be (N, H, W) or (N, H, W, C) with "
                                f"1, 2, 3 or 4 channels (gray, gray+alpha, RGB, RGBA); got shape {shape}.")
        self._validate_semantics()

    def _validate_semantics(self) -> None:
        """Class semantics (when given as a dict) must cover every class: an attribute row and a description
        for each. With a ``"classes"`` list (data.semantics) rows follow that list, which may hold more classes."""
        sem = self.semantics
        if not isinstance(sem, dict):
            return
        named = sem.get("classes")
        if sem.get("attributes") is not None and named is not None:
            att = np.asarray(sem["attributes"])
            missing = [c for c in self.classes if c not in set(map(str, named))]
            if att.ndim != 2 or att.shape[0] != len(named) or missing:
                raise DataError(
                    f"Dataset {self.name or ''}: the attribute table has {att.shape[0] if att.ndim else 0} rows for "
                    f"{len(named)} named classes; classes of the data without attributes: {missing[:10]}.")
            _check_finite_attributes(self.name, att, list(named))
        elif sem.get("attributes") is not None:
            att = np.asarray(sem["attributes"])
            if att.ndim != 2 or att.shape[0] != self.num_classes:
                raise DataError(
                    f"Dataset {self.name or ''}: the attribute table has {att.shape[0] if att.ndim else 0} rows for "
                    f"{self.num_classes} classes (shape {att.shape}); it needs one row per class, in the order of "
                    f"{self.classes[:10]}{'...' if self.num_classes > 10 else ''}.")
            _check_finite_attributes(self.name, att, list(self.classes))
        descriptions = sem.get("descriptions")
        if isinstance(descriptions, dict):
            missing = [c for c in self.classes if not descriptions.get(c)]
            if missing:
                raise DataError(f"Dataset {self.name or ''}: no description for class(es) {missing[:10]}"
                                f"{'...' if len(missing) > 10 else ''}; every class needs at least one sentence.")

    # -- basics ---------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.labels)

    @property
    def is_array(self) -> bool:
        return isinstance(self.images, np.ndarray)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.labels[self.labels >= 0], minlength=self.num_classes)
        return dict(zip(self.classes, counts.tolist()))

    def describe(self, index: int) -> str:
        """Where image ``index`` comes from (its path, or its array position)."""
        return self.images[index] if not self.is_array else f"{self.name or 'array'}[{index}]"

    def is_colour(self, samples: int = 8) -> bool:
        """True when the images are colour photographs: 3-4 channels whose colour planes differ, judged on up
        to ``samples`` evenly spaced images (file headers and a 32x32 thumbnail only). Grey scans, digits and
        characters stored as RGB count as grey."""
        n = len(self)
        if n == 0:
            return False
        picks = np.unique(np.linspace(0, n - 1, min(samples, n)).astype(int))
        for i in picks:
            if self.is_array:
                arr = self.images[i]
                if arr.ndim != 3 or arr.shape[-1] < 3:
                    return False
                rgb = arr[..., :3].astype(np.int16)
            else:
                try:
                    with Image.open(self.images[i]) as im:
                        if im.mode in ("1", "L", "LA", "I", "I;16", "F"):
                            return False
                        im.draft("RGB", (32, 32))
                        rgb = np.asarray(im.convert("RGB").resize((32, 32)), dtype=np.int16)
                except Exception:  # an unreadable file is reported by the loader, not here
                    continue
            if np.abs(rgb - rgb.mean(-1, keepdims=True)).max() <= 8:
                return False
        return True

    def load_image(self, index: int, channels: int = 3) -> Image.Image:
        if self.is_array:
            arr = self.images[index]
            return to_mode(Image.fromarray(arr if arr.ndim == 2 or arr.shape[-1] != 1 else arr[..., 0]), channels)
        image = open_image(self.images[index], channels)
        return preprocess(image, self.preprocess) if self.preprocess else image

    def _channels(self) -> int:
        return getattr(self.transform, "channels", 3)

    def __getitem__(self, index: int):
        image = self.load_image(int(index), self._channels())
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.labels[index])

    def __getitems__(self, indices):
        """Batched fetch for the DataLoader: vectorised for arrays with a deterministic transform."""
        t = self.transform
        if self.is_array and t is not None and getattr(t, "deterministic", False) and hasattr(t, "batch"):
            idx = np.asarray(indices)
            # (B, C, H, W) of this batch only: no channels-first copy of the whole array is kept in memory
            x = t.batch(torch.from_numpy(array_to_chw(self.images[idx])))
            return [(x, torch.from_numpy(self.labels[idx]))]  # a pre-collated batch, see collate()
        return [self[i] for i in indices]

    # -- derived datasets -----------------------------------------------------------------------
    def with_transform(self, transform) -> "ImageDataset":
        out = copy.copy(self)
        out.transform = transform
        return out

    def with_preprocess(self, preprocess: dict) -> "ImageDataset":
        """The same images with ``preprocess`` applied to each file as it is read (see the class docstring)."""
        out = copy.copy(self)
        out.preprocess = dict(preprocess or {})
        return out

    def subset(self, indices, *, classes: Sequence[str] | None = None, relabel=None) -> "ImageDataset":
        """Images at ``indices``; optionally with a new class list and a label map (old -> new)."""
        idx = np.asarray(indices, dtype=np.int64)
        labels = self.labels[idx]
        if relabel is not None:
            labels = np.array([relabel.get(int(l), -1) if l >= 0 else -1 for l in labels], dtype=np.int64)
        images = self.images[idx] if self.is_array else [self.images[i] for i in idx]
        out = ImageDataset(
            images, labels, classes if classes is not None else self.classes,
            domains=None if self.domains is None else self.domains[idx],
            extra={k: v[idx] for k, v in self.extra.items()}, semantics=self._semantics_for(classes),
            name=self.name, root=self.root, transform=self.transform, preprocess=self.preprocess)
        return out

    def _semantics_for(self, classes):
        """The semantics restricted to ``classes`` (attribute rows and descriptions follow the class names)."""
        sem = self.semantics
        if classes is None or not isinstance(sem, dict) or list(classes) == self.classes or "classes" in sem:
            return sem  # (semantics with their own class list are keyed by name: nothing to re-index)
        sem = dict(sem)
        if sem.get("attributes") is not None and all(c in self.classes for c in classes):
            sem["attributes"] = np.asarray(sem["attributes"])[[self.classes.index(c) for c in classes]]
        if isinstance(sem.get("descriptions"), dict):
            sem["descriptions"] = {c: v for c, v in sem["descriptions"].items() if c in set(classes)}
        return sem

    def unlabelled(self) -> "ImageDataset":
        """The same images with every label hidden (-1), e.g. a domain-adaptation target."""
        out = copy.copy(self)
        out.labels = np.full_like(self.labels, -1)
        return out

    def fingerprint(self) -> str:
        """Identifies the images and labels (array bytes, or paths with sizes and mtimes and the preprocessing
        applied to them as they are read)."""
        if self.is_array:
            return fingerprint(self.images, self.labels)
        stats = []
        for p in self.images:
            try:
                s = os.stat(p)
                stats.append((p, s.st_size, s.st_mtime_ns))
            except OSError:
                stats.append((p, -1, -1))
        return fingerprint(stats, self.labels, *([sorted(self.preprocess.items())] if self.preprocess else []))

    def __repr__(self) -> str:
        kind = f"arrays{tuple(self.images.shape)}" if self.is_array else "files"
        return f"ImageDataset(name={self.name!r}, n={len(self)}, classes={self.num_classes}, {kind})"


def _check_finite_attributes(name, att: np.ndarray, row_classes: list) -> None:
    """Refuse NaN or inf in an attribute table, naming the classes whose rows hold them."""
    finite = np.isfinite(att.astype(np.float64))
    if not finite.all():
        bad = [str(row_classes[i]) for i in np.flatnonzero(~finite.all(axis=1))]
        raise DataError(f"Dataset {name or ''}: the attribute table holds NaN or inf values in the rows of "
                        f"class(es) {bad[:10]}{'...' if len(bad) > 10 else ''}; fill them in or drop the classes.")


def collate(batch):
    """Default collate that also accepts a batch pre-collated by ``ImageDataset.__getitems__``."""
    if len(batch) == 1 and isinstance(batch[0], tuple) and isinstance(batch[0][0], torch.Tensor) and batch[0][0].dim() == 4:
        return batch[0]
    return torch.utils.data.default_collate(batch)


def check_image_files(ds: ImageDataset, on_error: str = "raise", progress: bool = False) -> ImageDataset:
    """Decode every image once. ``on_error='raise'``: one error listing every unreadable file (the first
    20 by name); ``'skip'``: drop them, with a warning naming each (the first 20) and the total."""
    import warnings

    from ..utils import progress_bar

    if ds.is_array:
        return ds
    bad: list[tuple[int, str]] = []
    for i in progress_bar(range(len(ds)), desc="checking images", enabled=progress, leave=False):
        try:
            ds.load_image(i)
        except ImageLoadError as e:
            bad.append((i, str(e)))
    if not bad:
        return ds
    if on_error == "raise":
        listed = " ".join(m if m.endswith(".") else m + "." for _, m in bad[:20])
        more = f" ...and {len(bad) - 20} more." if len(bad) > 20 else ""
        summary = f"{len(bad)} of {len(ds)} images are unreadable: " if len(bad) > 1 else ""
        raise ImageLoadError(f"{summary}{listed}{more} Pass on_error='skip' (on the command line: --on-error skip) "
                             f"to drop unreadable files with a warning.")
    for _, msg in bad[:20]:
        warnings.warn(f"skipping: {msg}", stacklevel=2)
    if len(bad) > 20:
        warnings.warn(f"skipping {len(bad) - 20} more unreadable images", stacklevel=2)
    warnings.warn(f"{ds.name or 'dataset'}: skipped {len(bad)} unreadable image(s) of {len(ds)}.", stacklevel=2)
    keep = np.setdiff1d(np.arange(len(ds)), [i for i, _ in bad])
    return ds.subset(keep)
