"""Class semantics for zero-shot learning: attribute tables and text descriptions.

Two formats, both keyed by class name:

* attributes: a CSV with a header ``class,attr1,...,attrM`` and one row per class (numbers; binary or
  continuous, e.g. the per-class attribute strengths of AwA/CUB);
* descriptions: a JSON object ``{class: "sentence" | ["sentence", ...]}`` or a CSV ``class,description``
  (several rows per class allowed).

A semantics dict is what :class:`~transferkit.data.ImageDataset` carries in ``semantics`` and what the
zero-shot strategies take: ``{"classes": [...], "attributes": (n_classes, M) float array,
"attribute_names": [...], "descriptions": {class: [sentences]}}`` (either part may be missing).
The package ships both for Fashion-MNIST (``fashion_mnist_semantics()``).

Example:
    >>> sem = fashion_mnist_semantics()
    >>> sem["attributes"].shape, len(sem["descriptions"]["Coat"])
    ((10, 24), 2)
"""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np

from ..errors import DataError

SEMANTICS_DIR = Path(__file__).resolve().parent / "semantics"


def load_attributes(path: str | os.PathLike) -> dict:
    """Read an attribute CSV (``class,attr1..attrM``) -> ``{"classes", "attributes", "attribute_names"}``.

    Raises :class:`DataError` naming the file and line for a missing header, a duplicate class, a
    wrong number of values, a non-numeric value or a NaN/inf value (empty cells included).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"Attribute file not found: {path}")
    with open(path, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    if len(rows) < 2 or len(rows[0]) < 2:
        raise DataError(f"{path}: an attribute CSV needs a header 'class,attr1,...,attrM' and one row per class.")
    header = [h.strip() for h in rows[0]]
    names = header[1:]
    classes, values = [], []
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise DataError(f"{path}, line {line}: {len(row)} fields; the header has {len(header)}.")
        name = row[0].strip()
        if not name:
            raise DataError(f"{path}, line {line}: empty class name.")
        if name in classes:
            raise DataError(f"{path}, line {line}: class {name!r} appears twice.")
        try:
            vals = [float(v) for v in row[1:]]
        except ValueError:
            raise DataError(f"{path}, line {line}: attribute values must be numbers; got {row[1:]}.") from None
        bad = [f"{names[k]}={row[1 + k].strip()!r}" for k, v in enumerate(vals) if not np.isfinite(v)]
        if bad:
            raise DataError(f"{path}, line {line} (class {name!r}): attribute values must be finite numbers; got "
                            f"{', '.join(bad[:5])}{' ...' if len(bad) > 5 else ''}. Fill in the missing values.")
        values.append(vals)
        classes.append(name)
    return {"classes": classes, "attributes": np.asarray(values, dtype=np.float64), "attribute_names": names}


def load_descriptions(path: str | os.PathLike) -> dict:
    """Read class descriptions (JSON ``{class: sentence(s)}`` or CSV ``class,description``).

    Returns ``{"classes": [...], "descriptions": {class: [sentences]}}`` (classes in file order).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"Description file not found: {path}")
    desc: dict[str, list[str]] = {}
    if path.suffix.lower() == ".json":
        try:
            obj = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: not valid JSON ({e}).") from None
        if not isinstance(obj, dict):
            raise DataError(f"{path}: expected a JSON object {{class: sentence or [sentences]}}.")
        for name, v in obj.items():
            sentences = [v] if isinstance(v, str) else v
            if not isinstance(sentences, list) or not all(isinstance(s, str) for s in sentences):
                raise DataError(f"{path}: the descriptions of {name!r} must be a string or a list of strings.")
            desc[str(name)] = [s.strip() for s in sentences if s.strip()]
    else:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if not header or len(header) < 2:
                raise DataError(f"{path}: a description CSV needs a header 'class,description'.")
            for line, row in enumerate(reader, start=2):
                if not row:
                    continue
                if len(row) < 2 or not row[0].strip():
                    raise DataError(f"{path}, line {line}: expected 'class,description'.")
                desc.setdefault(row[0].strip(), []).append(",".join(row[1:]).strip())
    empty = [c for c, s in desc.items() if not s]
    if not desc or empty:
        raise DataError(f"{path}: every class needs at least one sentence; empty: {empty or 'all'}.")
    return {"classes": list(desc), "descriptions": desc}


def merge_semantics(*parts: dict) -> dict:
    """Combine attribute and description dicts; the class list is the first part's."""
    out: dict = {}
    for p in parts:
        for k, v in p.items():
            if k == "classes" and "classes" in out:
                continue
            out[k] = v
    return out


def fashion_mnist_semantics() -> dict:
    """The built-in semantics of Fashion-MNIST's 10 classes: 24 attributes and 2 sentences per class.

    The attribute table (``data/semantics/fashion_mnist_attributes.csv``) was written for transferkit
    from the garments' visible properties (body part, sleeves, collar, laces, heel...), in the style of
    the AwA/CUB class-attribute matrices; values are 0, 0.5 (sometimes) or 1.
    """
    from .loaders import FASHION_CLASSES

    sem = merge_semantics(load_attributes(SEMANTICS_DIR / "fashion_mnist_attributes.csv"),
                          load_descriptions(SEMANTICS_DIR / "fashion_mnist_descriptions.json"))
    if sem["classes"] != list(FASHION_CLASSES):
        raise DataError(f"The packaged Fashion-MNIST semantics list {sem['classes']}, not {FASHION_CLASSES}.")
    return sem


def digits_semantics() -> dict:
    """The built-in attributes of the 10 digits: the seven segments of a seven-segment display (as in
    the classic digit-attribute experiments) plus closed loop, two loops, diagonal stroke and round strokes
    (0, 0.5 or 1). Written for transferkit; ``data/semantics/digits_attributes.csv``."""
    sem = load_attributes(SEMANTICS_DIR / "digits_attributes.csv")
    if sem["classes"] != [str(i) for i in range(10)]:
        raise DataError(f"The packaged digits semantics list {sem['classes']}, not 0-9.")
    return sem


BUILTIN_SEMANTICS = {"fashion-mnist": fashion_mnist_semantics, "digits": digits_semantics}


def builtin_semantics(dataset: str) -> dict:
    """The packaged semantics of a built-in dataset ('fashion-mnist' or 'digits')."""
    if dataset not in BUILTIN_SEMANTICS:
        raise DataError(f"No built-in semantics for {dataset!r}; available: {sorted(BUILTIN_SEMANTICS)}. "
                        f"Give an attribute CSV (class,attr1,...) or a descriptions JSON instead.")
    return BUILTIN_SEMANTICS[dataset]()
