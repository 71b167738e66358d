"""Doors into an ImageDataset: ImageFolder directories, CSV manifests, arrays, built-in datasets."""
from __future__ import annotations

import csv
import errno
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
                name: str | None = None, unlabelled: bool = False) -> ImageDataset:
    """An ImageFolder directory: ``root/<class>/<image>``; classes sorted by name (torchvision's layout).

    ``unlabelled=True`` (a domain-adaptation target, images to predict) also accepts a flat folder of images, as
    a folder of night photos comes: when ``root`` holds image files itself, every image under it (at any depth) is
    read with the label -1 and no classes.

    Empty class folders are an error naming the folder. ``validate`` decodes every image once so bad
    files are reported with their paths (all of them) before training starts (``on_error='skip'`` drops
    them with a warning). Symbolic links are followed inside ``root`` only: a link that leaves ``root``,
    a symlink loop, and a link to a folder or image already read (which would duplicate images, possibly
    across classes or splits) are skipped with a warning naming the link.
    """
    check_choice("from_folder", "on_error", on_error, ("raise", "skip"))
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"Image folder not found: {root}")
    real_root = root.resolve()
    skipped: dict[str, list[str]] = {"leave the root": [], "form a loop": [], "repeat a folder or image already read": [],
                                     "are broken": []}
    seen_dirs: set = {_dir_key(real_root)}
    seen_files: dict = {}
    exts = tuple(e.lower() for e in extensions)
    class_dirs = []
    for d in sorted(root.iterdir()):
        if d.name.startswith(".") or not _follow(d, real_root, skipped) or not d.is_dir():
            continue
        key = _dir_key(d)
        if key in seen_dirs:
            skipped["form a loop" if real_root.is_relative_to(d.resolve()) else "repeat a folder or image already read"].append(str(d))
            continue
        seen_dirs.add(key)
        class_dirs.append(d)
    if unlabelled and any(f.suffix.lower() in exts and f.is_file() for f in root.iterdir()):
        files = _walk_images(root, real_root, exts, skipped, {_dir_key(real_root)}, {})
        _warn_skipped_links(root, skipped)
        ds = ImageDataset([str(f) for f in files], [-1] * len(files), [], name=name or root.name, root=str(root))
        return check_image_files(ds, on_error) if validate else ds
    if not class_dirs:
        _warn_skipped_links(root, skipped)
        flat = (" (a flat folder of images is read only where unlabelled images are expected, e.g. a "
                "domain-adaptation --target)" if any(f.suffix.lower() in exts for f in root.iterdir()) else "")
        raise DataError(f"{root} has no class sub-folders; expected the layout {root}/<class>/<image files>{flat}.")
    paths, labels, empty = [], [], []
    for label, d in enumerate(class_dirs):
        files = _walk_images(d, real_root, exts, skipped, seen_dirs, seen_files)
        if not files:
            empty.append(str(d))
        paths += [str(f) for f in files]
        labels += [label] * len(files)
    _warn_skipped_links(root, skipped)
    if empty:
        raise DataError(f"Empty class folder(s) (no {'/'.join(exts)} files): {', '.join(empty)}. "
                        f"Remove them or add images.")
    ds = ImageDataset(paths, labels, [d.name for d in class_dirs], name=name or root.name, root=str(root))
    return check_image_files(ds, on_error) if validate else ds


def _dir_key(path: Path):
    st = os.stat(path)
    return st.st_dev, st.st_ino


def _follow(path: Path, real_root: Path, skipped: dict) -> bool:
    """Whether to read ``path``: plain entries yes; symbolic links only to a target inside the root."""
    if not path.is_symlink():
        return True
    try:
        target = path.resolve(strict=True)
    except RuntimeError:  # Python < 3.13 reports a symlink loop so
        skipped["form a loop"].append(str(path))
        return False
    except OSError as e:
        skipped["form a loop" if e.errno == errno.ELOOP else "are broken"].append(str(path))
        return False
    if not target.is_relative_to(real_root):
        skipped["leave the root"].append(f"{path} -> {target}")
        return False
    return True


def _walk_images(class_dir: Path, real_root: Path, exts, skipped: dict, seen_dirs: set, seen_files: dict) -> list[Path]:
    """Image files under ``class_dir`` (recursively, sorted), following links inside the root once each."""
    files, stack = [], [class_dir]
    while stack:
        d = stack.pop()
        try:
            entries = sorted(d.iterdir())
        except OSError as e:
            skipped["are broken"].append(f"{d} ({e.strerror or e})")
            continue
        subdirs = []
        for f in entries:
            if not _follow(f, real_root, skipped):
                continue
            if f.is_dir():
                key = _dir_key(f)
                if key in seen_dirs:
                    loop = any(p.resolve() == f.resolve() for p in [d, *d.parents])
                    skipped["form a loop" if loop else "repeat a folder or image already read"].append(str(f))
                    continue
                seen_dirs.add(key)
                subdirs.append(f)
            elif f.is_file() and f.suffix.lower() in exts:
                real = f.resolve()
                if real in seen_files:
                    skipped["repeat a folder or image already read"].append(f"{f} (= {seen_files[real]})")
                    continue
                seen_files[real] = f
                files.append(f)
        stack.extend(reversed(subdirs))
    return sorted(files)


def _warn_skipped_links(root: Path, skipped: dict) -> None:
    for why, items in skipped.items():
        if items:
            shown = ", ".join(items[:10]) + (f" and {len(items) - 10} more" if len(items) > 10 else "")
            warnings.warn(f"{root}: skipped {len(items)} symbolic link(s) or folder(s) that {why}: {shown}.",
                          stacklevel=3)


MISSING_LABELS = frozenset({"", "nan", "na", "n/a", "null", "none"})


def from_csv(path, *, root=None, path_column: str = "path", label_column: str = "label",
             domain_column: str | None = "domain", extra_columns=None, classes=None, validate: bool = True,
             on_error: str = "raise", unlabelled: bool = False, duplicates: str = "raise") -> ImageDataset:
    """A CSV manifest: one row per image with a path (relative to ``root``, default the CSV's folder),
    a label (class name), an optional domain column and extra label columns (``extra_columns``, default:
    every other column). Paths that resolve outside ``root`` are refused.

    A row without a label (empty, or ``nan``/``NA``/``null``/``None``, as spreadsheets and pandas write
    missing values) is refused naming its line, unless ``unlabelled=True``: then such rows are kept as
    unlabelled images (label -1), e.g. a domain-adaptation target. A class list given in ``classes``
    that names one of those words makes it a label. A row repeating the image of an earlier row
    (the same resolved path) is refused (``duplicates='raise'``), or dropped with a warning naming the
    lines (``duplicates='drop'``), so no image lands in both a train and a test split; the same image
    with two different labels is always refused.
    """
    check_choice("from_csv", "on_error", on_error, ("raise", "skip"))
    check_choice("from_csv", "duplicates", duplicates, ("raise", "drop"))
    path = Path(path)
    if not path.is_file():
        raise DataError(f"CSV manifest not found: {path}")
    root = Path(root) if root is not None else path.parent
    root_resolved = root.resolve()
    with open(path, newline="", encoding="utf-8-sig") as f:  # Excel's "CSV UTF-8" starts with a byte-order mark
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
    given = set(map(str, classes)) if classes is not None else set()
    is_missing = [n.lower() in MISSING_LABELS and n not in given for n in names]
    if any(is_missing) and not unlabelled:
        lines = [i for i, m in enumerate(is_missing, start=2) if m]
        raise DataError(
            f"{path}, line {lines[0]}: no label (the {label_column!r} column is {names[lines[0] - 2]!r}); "
            f"{len(lines)} row(s) without a label in all (line(s) {_lines(lines)}). Every row needs a class name; "
            f"pass unlabelled=True to keep such rows as unlabelled images (on the command line: "
            f"--data '{path}?unlabelled=true'; a domain-adaptation --target keeps them by itself).")
    names = ["" if m else n for n, m in zip(names, is_missing)]
    keep = _dedupe_rows(path, paths, names, rows, duplicates)
    class_list = list(classes) if classes is not None else sorted({n for n in names if n})
    index = {c: k for k, c in enumerate(class_list)}
    unknown = sorted({n for n in names if n and n not in index})
    if unknown:
        raise DataError(f"{path}: labels {unknown[:10]} are not in the class list {class_list[:20]}.")
    if len(keep) < len(rows):
        rows, paths, names = [rows[i] for i in keep], [paths[i] for i in keep], [names[i] for i in keep]
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


def _lines(lines: list[int], n: int = 10) -> str:
    return ", ".join(map(str, lines[:n])) + (f" and {len(lines) - n} more" if len(lines) > n else "")


def _dedupe_rows(path: Path, paths: list[str], names: list[str], rows: list[dict], duplicates: str) -> list[int]:
    """Indices of the rows to keep: the first row of each image; a repeat is refused or dropped with a warning."""
    first: dict[str, int] = {}
    keep, repeats = [], []
    for i, p in enumerate(paths):
        if p not in first:
            first[p] = i
            keep.append(i)
            continue
        j = first[p]
        if names[i] != names[j]:
            raise DataError(f"{path}, line {i + 2}: the image {p} is also on line {j + 2} with another label "
                            f"({names[i]!r} here, {names[j]!r} there); an image has one label.")
        repeats.append((i + 2, j + 2))
    if repeats:
        listed = ", ".join(f"line {a} (= line {b})" for a, b in repeats[:10]) + (
            f" and {len(repeats) - 10} more" if len(repeats) > 10 else "")
        if duplicates == "raise":
            raise DataError(f"{path}: {len(repeats)} duplicate row(s) repeat an earlier image: {listed}. A repeated "
                            f"image can land in both the train and the test split. Remove the repeats, or pass "
                            f"duplicates='drop' to keep the first row of each image (on the command line: "
                            f"--data '{path}?duplicates=drop').")
        warnings.warn(f"{path}: dropped {len(repeats)} duplicate row(s) repeating an earlier image: {listed}.",
                      stacklevel=3)
    return keep


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
def _digits(split="all"):
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


def load_unlabelled(spec, **kwargs) -> ImageDataset:
    """Images whose labels are not used (a domain-adaptation target): :func:`load_dataset` of ``spec``, where a
    folder may also be flat and a CSV may leave its labels empty; every label is then hidden (-1)."""
    base = split_options(spec)[0]
    if dataset_info(base.partition(":")[0]) is None or Path(base).exists():
        kwargs.setdefault("unlabelled", True)
    return load_dataset(spec, **kwargs).unlabelled()


def split_options(spec) -> tuple[str, dict]:
    """``'SPEC?key=value&key=value'`` -> ``('SPEC', {key: value})``: the dataset options of a data spec.

    Values are read as YAML scalars (``true``, ``28``, ``0.5``, text); a value with commas is a list
    (``exclude_alphabets=Greek,Latin``). A path that exists as given is never split.

    >>> split_options("m.csv?duplicates=drop&unlabelled=true")
    ('m.csv', {'duplicates': 'drop', 'unlabelled': True})
    """
    import yaml

    s = str(spec)
    if "?" not in s or Path(s).exists():
        return s, {}
    base, _, query = s.partition("?")
    options = {}
    for pair in query.split("&"):
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise DataError(f"Data {s!r}: dataset options are written NAME_OR_PATH?key=value&key=value; got {pair!r}.")
        parts = [yaml.safe_load(v) if v.strip() else "" for v in value.split(",")]
        options[key.strip().replace("-", "_")] = parts if "," in value else parts[0]
    return base, options


def loader_options(fn) -> list[str] | None:
    """The dataset options a loader takes (its keyword parameters but ``split``); None when it takes any
    (``**kwargs``: such a loader checks its own)."""
    import inspect

    params = inspect.signature(fn).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "split"]


def _check_options(fn, options: dict, base: str) -> None:
    """Refuse dataset options ``fn`` does not take, naming them and the ones it does."""
    from ..errors import nearest

    named = loader_options(fn)
    unknown = [k for k in options if named is not None and k not in named]
    if unknown:
        takes = f"its options are {named}" if named else "it takes no options"
        raise DataError(f"Data {base!r}: unknown dataset option(s) {unknown}; {takes}.{nearest(unknown[0], named)}")


def load_dataset(spec, **kwargs) -> ImageDataset:
    """Any door by a string: a built-in name with an optional split (``'hymenoptera:val'``, ``'usps:test'``,
    ``'fashion-mnist:train'``, see ``transferkit datasets``), a folder, or a .csv manifest; each may end with
    dataset options, ``?key=value&key=value`` (``'m.csv?duplicates=drop'``, ``'omniglot:background?invert=true'``),
    which win over the same keyword given in ``kwargs``."""
    if not isinstance(spec, (str, os.PathLike)):
        raise TransferkitError(f"load_dataset expects a name or a path; got {type(spec).__name__}.")
    s, options = split_options(spec)
    kwargs.update(options)
    name, _, split = s.partition(":")
    if dataset_info(name) is not None and not Path(s).exists():
        _check_options(dataset_info(name).loader, options, s)
        return load_registered(name, split or None, **kwargs)
    for prefix, fn in (("folder:", from_folder), ("csv:", from_csv)):
        if s.startswith(prefix):
            _check_options(fn, options, s)
            return fn(s[len(prefix):], **kwargs)
    p = Path(s)
    if p.is_dir():
        _check_options(from_folder, options, s)
        return from_folder(p, **kwargs)
    if p.suffix.lower() == ".csv":
        _check_options(from_csv, options, s)
        return from_csv(p, **kwargs)
    raise DataError(f"Unknown dataset {s!r}: give a folder (ImageFolder layout), a .csv manifest, "
                    f"or a built-in name: {', '.join(BUILTIN_DATASETS)}.")
