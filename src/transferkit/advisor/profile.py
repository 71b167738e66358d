"""Dataset profile: what a practitioner checks before choosing a strategy.

``profile_dataset(ds)`` counts classes and images per class (min / median / max), the class imbalance
ratio, the image sizes and channel modes, and exact duplicates (identical bytes; duplicates that carry
different labels are listed separately because they are label noise or leakage).

Example:
    >>> from transferkit.data import load_digits
    >>> p = profile_dataset(load_digits())
    >>> p.n_classes, p.min_per_class, p.median_per_class
    (10, 174, 180.5)
"""
from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field

import numpy as np

from ..data.dataset import ImageDataset
from ..errors import TransferkitError

# Labels per class below which the advisor calls the data "few labels" / "limited labels".
FEW_SHOT_MAX = 5
LIMITED_MAX = 100


@dataclass
class DatasetProfile:
    """Plain-data summary of an :class:`ImageDataset` (``to_dict()`` is JSON-ready)."""

    name: str
    n_images: int
    n_labelled: int
    n_unlabelled: int
    n_classes: int
    classes: list[str]
    per_class: dict[str, int]
    min_per_class: int
    median_per_class: float
    max_per_class: int
    imbalance_ratio: float                 # largest class / smallest non-empty class
    empty_classes: list[str]
    sizes: dict[str, int]                  # "HxW" -> count (files: from headers, without decoding)
    channels: dict[str, int]               # "L" / "RGB" / "RGBA" / ... -> count
    min_size: tuple[int, int]
    median_size: tuple[float, float]
    duplicate_groups: list[list[str]]      # images with identical bytes (at most 50 groups listed)
    n_duplicates: int                      # images that repeat an earlier one
    conflicting_duplicates: list[list[str]] = field(default_factory=list)  # same bytes, different labels
    domains: dict[str, int] = field(default_factory=dict)
    unreadable: list[str] = field(default_factory=list)

    @property
    def regime(self) -> str:
        """'few-shot' (<= 5 labels per class), 'limited' (<= 100) or 'plenty' (median labels per class)."""
        m = self.median_per_class
        return "few-shot" if m <= FEW_SHOT_MAX else "limited" if m <= LIMITED_MAX else "plenty"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["regime"] = self.regime
        return d

    def summary(self) -> list[str]:
        """Practitioner-readable lines."""
        lines = [f"{self.n_images} images ({self.n_labelled} labelled), {self.n_classes} classes",
                 f"images per class: min {self.min_per_class}, median {self.median_per_class:g}, "
                 f"max {self.max_per_class} (imbalance {self.imbalance_ratio:.1f}x) -> {self.regime} regime"]
        sizes = ", ".join(f"{k} ({v})" for k, v in list(self.sizes.items())[:4])
        lines.append(f"image sizes: {sizes}{' ...' if len(self.sizes) > 4 else ''}; channels: "
                     + ", ".join(f"{k} ({v})" for k, v in self.channels.items()))
        if self.n_duplicates:
            lines.append(f"exact duplicates: {self.n_duplicates} images in {len(self.duplicate_groups)} groups"
                         + (f", {len(self.conflicting_duplicates)} groups with conflicting labels"
                            if self.conflicting_duplicates else ""))
        if self.empty_classes:
            lines.append(f"classes without labelled images: {self.empty_classes}")
        if self.domains:
            lines.append("domains: " + ", ".join(f"{k} ({v})" for k, v in self.domains.items()))
        if self.unreadable:
            lines.append(f"unreadable files: {len(self.unreadable)} (first: {self.unreadable[0]})")
        return lines


def _array_info(arr: np.ndarray):
    h, w = arr.shape[1:3]
    mode = "L" if arr.ndim == 3 or arr.shape[-1] == 1 else {3: "RGB", 4: "RGBA"}.get(arr.shape[-1], f"{arr.shape[-1]}ch")
    return [(h, w)] * len(arr), [mode] * len(arr)


def profile_dataset(ds: ImageDataset, *, duplicates: bool = True, max_groups: int = 50) -> DatasetProfile:
    """Profile ``ds``: class counts, imbalance, sizes/channels, exact duplicates (hash of the bytes).

    File images are measured from their headers (no decoding) and hashed by content; arrays by their
    pixel bytes. Cost: one read of every file.
    """
    if not isinstance(ds, ImageDataset):
        raise TransferkitError(f"profile_dataset expects an ImageDataset; got {type(ds).__name__}.")
    labels = ds.labels
    counts = np.bincount(labels[labels >= 0], minlength=ds.num_classes)
    nonzero = counts[counts > 0]
    unreadable: list[str] = []
    if ds.is_array:
        sizes, modes = _array_info(ds.images)
    else:
        from PIL import Image

        sizes, modes = [], []
        for p in ds.images:
            try:
                with Image.open(p) as im:
                    sizes.append((im.height, im.width))
                    modes.append(im.mode)
            except Exception:
                unreadable.append(p)
    groups, conflicts, n_dup = [], [], 0
    if duplicates:
        by_hash: dict[str, list[int]] = defaultdict(list)
        for i in range(len(ds)):
            if ds.is_array:
                data = np.ascontiguousarray(ds.images[i]).tobytes()
            else:
                try:
                    with open(ds.images[i], "rb") as f:
                        data = f.read()
                except OSError:
                    continue
            by_hash[hashlib.blake2b(data, digest_size=16).hexdigest()].append(i)
        for idx in by_hash.values():
            if len(idx) > 1:
                n_dup += len(idx) - 1
                names = [ds.describe(i) for i in idx]
                if len(groups) < max_groups:
                    groups.append(names)
                labs = {int(labels[i]) for i in idx if labels[i] >= 0}
                if len(labs) > 1 and len(conflicts) < max_groups:
                    conflicts.append([f"{ds.describe(i)} ({ds.classes[labels[i]] if labels[i] >= 0 else 'unlabelled'})"
                                      for i in idx])
    hw = np.array(sizes, dtype=np.float64).reshape(-1, 2)
    size_counts = Counter(f"{h}x{w}" for h, w in sizes)
    return DatasetProfile(
        name=ds.name, n_images=len(ds), n_labelled=int((labels >= 0).sum()), n_unlabelled=int((labels < 0).sum()),
        n_classes=ds.num_classes, classes=list(ds.classes), per_class=dict(zip(ds.classes, counts.tolist())),
        min_per_class=int(nonzero.min()) if nonzero.size else 0,
        median_per_class=float(np.median(nonzero)) if nonzero.size else 0.0,
        max_per_class=int(nonzero.max()) if nonzero.size else 0,
        imbalance_ratio=float(nonzero.max() / nonzero.min()) if nonzero.size else float("nan"),
        empty_classes=[c for c, n in zip(ds.classes, counts) if n == 0],
        sizes=dict(size_counts.most_common()), channels=dict(Counter(modes).most_common()),
        min_size=(int(hw[:, 0].min()), int(hw[:, 1].min())) if len(hw) else (0, 0),
        median_size=(float(np.median(hw[:, 0])), float(np.median(hw[:, 1]))) if len(hw) else (0.0, 0.0),
        duplicate_groups=groups, n_duplicates=n_dup, conflicting_duplicates=conflicts,
        domains=dict(Counter(ds.domains.tolist()).most_common()) if ds.domains is not None else {},
        unreadable=unreadable,
    )
