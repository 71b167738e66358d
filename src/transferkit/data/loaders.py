"""Doors into an ImageDataset: ImageFolder directories, CSV manifests, arrays, built-in datasets."""
from __future__ import annotations

import csv
import gzip
import os
import struct
import warnings
from pathlib import Path

import numpy as np

from ..errors import DataError, TransferkitError, check_choice
from ..utils import cache_dir
from .dataset import ImageDataset, check_image_files
from .images import IMAGE_EXTENSIONS
from .registry import BUILTIN_DATASETS, dataset_info, load_registered, register_dataset

FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
FASHION_SYSTEM_DIR = "/usr/share/datasets/fashion-mnist"


def from_folder(root, *, validate: bool = True, on_error: str = "raise", extensions=IMAGE_EXTENSIONS,
                name: str | None = None) -> ImageDataset:
    """An ImageFolder directory: ``root/<class>/<image>``; classes sorted by name (torchvision's layout).

    Empty class folders are an error naming the folder. ``validate`` decodes every image once so a bad
    file is reported with its path before training starts (``on_error='skip'`` drops it with a warning).
    """
    check_choice("from_folder", "on_error", on_error, ("raise", "skip"))
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"Image folder not found: {root}")
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not class_dirs:
        raise DataError(f"{root} has no class sub-folders; expected the layout {root}/<class>/<image files>.")
    paths, labels, empty = [], [], []
    exts = tuple(e.lower() for e in extensions)
    for label, d in enumerate(class_dirs):
        files = sorted(f for f in d.rglob("*") if f.is_file() and f.suffix.lower() in exts)
        if not files:
            empty.append(str(d))
        paths += [str(f) for f in files]
        labels += [label] * len(files)
    if empty:
        raise DataError(f"Empty class folder(s) (no {'/'.join(exts)} files): {', '.join(empty)}. "
                        f"Remove them or add images.")
    ds = ImageDataset(paths, labels, [d.name for d in class_dirs], name=name or root.name, root=str(root))
    return check_image_files(ds, on_error) if validate else ds


def from_csv(path, *, root=None, path_column: str = "path", label_column: str = "label",
             domain_column: str | None = "domain", extra_columns=None, classes=None, validate: bool = True,
             on_error: str = "raise") -> ImageDataset:
    """A CSV manifest: one row per image with a path (relative to ``root``, default the CSV's folder),
    a label (class name), an optional domain column and extra label columns (``extra_columns``, default:
    every other column). Paths that resolve outside ``root`` are refused.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"CSV manifest not found: {path}")
    root = Path(root) if root is not None else path.parent
    root_resolved = root.resolve()
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        rows = list(reader)
    for col in (path_column, label_column):
        if col not in columns:
            raise DataError(f"{path}: missing column {col!r}; the columns are {columns}.")
    if not rows:
        raise DataError(f"{path}: the manifest has no rows.")
    domain_column = domain_column if domain_column in columns else None
    if extra_columns is None:
        extra_columns = [c for c in columns if c not in (path_column, label_column, domain_column)]
    missing = [c for c in extra_columns if c not in columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; the columns are {columns}.")
    paths = []
    for i, row in enumerate(rows, start=2):
        rel = (row[path_column] or "").strip()
        if not rel:
            raise DataError(f"{path}, line {i}: empty {path_column!r}.")
        full = (root / rel).resolve()
        if not full.is_relative_to(root_resolved):
            raise DataError(f"{path}, line {i}: path {rel!r} resolves outside the root {root_resolved}; refused.")
        paths.append(str(full))
    names = [(row[label_column] or "").strip() for row in rows]
    class_list = list(classes) if classes is not None else sorted({n for n in names if n})
    index = {c: k for k, c in enumerate(class_list)}
    unknown = sorted({n for n in names if n and n not in index})
    if unknown:
        raise DataError(f"{path}: labels {unknown[:10]} are not in the class list {class_list[:20]}.")
    labels = [index[n] if n else -1 for n in names]
    extra = {c: _column(rows, c) for c in extra_columns}
    domains = [row[domain_column] for row in rows] if domain_column else None
    ds = ImageDataset(paths, labels, class_list, domains=domains, extra=extra, name=path.stem, root=str(root))
    return check_image_files(ds, on_error) if validate else ds


def _column(rows, col):
    values = [(r[col] or "").strip() for r in rows]
    try:
        return np.array([float(v) if v else np.nan for v in values])
    except ValueError:
        return np.array(values, dtype=object)


def from_arrays(images, labels, classes=None, *, name: str = "arrays", **kwargs) -> ImageDataset:
    """Numpy arrays: images uint8 (N, H, W) or (N, H, W, C) (floats in [0, 1] are converted)."""
    images = np.asarray(images)
    if images.ndim not in (3, 4):
        raise DataError(f"from_arrays: images must be (N, H, W) or (N, H, W, C); got shape {images.shape}.")
    if images.dtype != np.uint8:
        if images.dtype.kind == "f":
            bad = ~np.isfinite(images)
            if bad.any():
                rows = np.flatnonzero(bad.reshape(len(images), -1).any(1))
                raise DataError(f"from_arrays: {len(rows)} image(s) contain NaN or inf values (first at index "
                                f"{rows[:5].tolist()}); images must be uint8 or finite floats in [0, 1].")
            lo, hi = (float(images.min()), float(images.max())) if images.size else (0.0, 0.0)
            if lo < 0 or hi > 1:
                raise DataError(f"from_arrays: images must be uint8 or floats in [0, 1]; got dtype {images.dtype} "
                                f"with values in [{lo:.4g}, {hi:.4g}]. Scale them to [0, 1] or convert to uint8.")
            images = (images * 255).round().astype(np.uint8)
        else:
            raise DataError(f"from_arrays: images must be uint8 or floats in [0, 1]; got dtype {images.dtype}.")
    labels = np.asarray(labels)
    if classes is None:
        classes = [str(c) for c in range(int(labels.max()) + 1)] if labels.size else []
    return ImageDataset(images, labels, classes, name=name, **kwargs)


@register_dataset("digits", description="scikit-learn's 8x8 handwritten digits, 1,797 images, 10 classes "
                  "(always available)", splits=("all",), default_split="all", source="sklearn.datasets.load_digits")
def _digits(split="all", **kwargs):
    return load_digits()


def load_digits() -> ImageDataset:
    """scikit-learn's digits: 1,797 8x8 grayscale images, 10 classes (pixel values 0-16 scaled to 0-255)."""
    from sklearn.datasets import load_digits as _load

    d = _load()
    images = np.clip(d.images * (255.0 / 16.0), 0, 255).round().astype(np.uint8)
    return ImageDataset(images, d.target, [str(i) for i in range(10)], name="digits")


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    _, dtype, ndim = data[0] | data[1], data[2], data[3]
    shape = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    if dtype != 0x08:
        raise DataError(f"{path}: unexpected IDX dtype {dtype:#x}")
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _find_fashion(root) -> Path | None:
    candidates = [root] if root else []
    candidates += [os.environ.get("TRANSFERKIT_DATA") and Path(os.environ["TRANSFERKIT_DATA"]) / "fashion-mnist",
                   cache_dir() / "datasets" / "fashion-mnist", FASHION_SYSTEM_DIR]
    for c in candidates:
        if not c:
            continue
        for sub in (Path(c), Path(c) / "FashionMNIST" / "raw"):
            if any((sub / f"train-images-idx3-ubyte{s}").exists() for s in (".gz", "")):
                return sub
    return None


@register_dataset("fashion-mnist", description="Zalando's 28x28 garments, 60k train + 10k test, 10 classes "
                  "(apt-get install dataset-fashion-mnist, or torchvision's downloader)",
                  splits=("train", "test", "all"), default_split="train", source="torchvision.datasets.FashionMNIST")
def load_fashion_mnist(split: str = "train", root=None, download: bool = True) -> ImageDataset:
    """Fashion-MNIST (Xiao et al. 2017): 28x28 grayscale garments, 10 classes; split 'train', 'test' or 'all'.

    Looked up in ``root``, ``$TRANSFERKIT_DATA/fashion-mnist``, the user cache, the Debian copy in
    /usr/share/datasets/fashion-mnist, then torchvision's downloader.
    """
    check_choice("load_fashion_mnist", "split", split, ("train", "test", "all"))
    where = _find_fashion(root)
    if where is None and download:
        try:
            from torchvision.datasets import FashionMNIST

            target = cache_dir() / "datasets" / "fashion-mnist"
            FashionMNIST(str(target), train=True, download=True)
            FashionMNIST(str(target), train=False, download=True)
            where = _find_fashion(target)
        except Exception:  # offline
            where = None
    if where is None:
        raise DataError(
            "Fashion-MNIST not found. Install it with `apt-get install dataset-fashion-mnist` (Debian; files in "
            f"{FASHION_SYSTEM_DIR}), or put the four IDX files in $TRANSFERKIT_DATA/fashion-mnist, or run once "
            "with network access so torchvision can download it.")

    def part(prefix):
        f = lambda kind: next(p for s in (".gz", "") if (p := where / f"{prefix}-{kind}-idx{3 if kind == 'images' else 1}-ubyte{s}").exists())
        return _read_idx(f("images")), _read_idx(f("labels"))

    parts = {"train": ["train"], "test": ["t10k"], "all": ["train", "t10k"]}[split]
    arrays = [part(p) for p in parts]
    images = np.concatenate([a for a, _ in arrays])
    labels = np.concatenate([b for _, b in arrays]).astype(np.int64)
    return ImageDataset(images, labels, FASHION_CLASSES, name=f"fashion-mnist-{split}", root=str(where))


def load_dataset(spec, **kwargs) -> ImageDataset:
    """Any door by a string: a built-in name with an optional split (``'hymenoptera:val'``, ``'usps:test'``,
    ``'fashion-mnist:train'``, see ``transferkit datasets``), a folder, or a .csv manifest."""
    if not isinstance(spec, (str, os.PathLike)):
        raise TransferkitError(f"load_dataset expects a name or a path; got {type(spec).__name__}.")
    s = str(spec)
    name, _, split = s.partition(":")
    if dataset_info(name) is not None and not Path(s).exists():
        return load_registered(name, split or None, **kwargs)
    for prefix, fn in (("folder:", from_folder), ("csv:", from_csv)):
        if s.startswith(prefix):
            return fn(s[len(prefix):], **kwargs)
    p = Path(s)
    if p.is_dir():
        return from_folder(p, **kwargs)
    if p.suffix.lower() == ".csv":
        return from_csv(p, **kwargs)
    raise DataError(f"Unknown dataset {s!r}: give a folder (ImageFolder layout), a .csv manifest, "
                    f"or a built-in name: {', '.join(BUILTIN_DATASETS)}.")


def warn_small_classes(ds: ImageDataset, minimum: int = 2) -> None:
    small = {c: n for c, n in ds.class_counts().items() if n < minimum}
    if small:
        warnings.warn(f"{ds.name}: classes with fewer than {minimum} images: {small}", stacklevel=2)
