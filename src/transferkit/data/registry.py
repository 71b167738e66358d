"""Built-in datasets by name: one registry that ``load_dataset``, the CLI's ``datasets`` command and the tour read.

Each dataset lives in its own small module (``data/real/``) and registers a loader with
:func:`register_dataset`. A loader takes ``(split, root=None, download=True, **kwargs)``. Files are looked up
in this order: an explicit ``root``, every folder of ``$TRANSFERKIT_DATA`` (``os.pathsep``-separated), the
user cache (``~/.cache/transferkit/datasets``), then the dataset's public download.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import DataError
from ..utils import cache_dir

BUILTIN_DATASETS: dict[str, str] = {}  # name -> one-line description (the CLI's `datasets` listing)
_REGISTRY: dict[str, "DatasetInfo"] = {}


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    description: str
    splits: tuple[str, ...]
    default_split: str
    loader: Callable
    source: str = ""
    folder: str = ""  # the image folder it reads under a data root, when it reads one (not a zip or an array file)


def register_dataset(name: str, *, description: str, splits: tuple[str, ...], default_split: str, source: str = "",
                     folder: str = ""):
    """Decorator: register ``fn(split, root=None, download=True, **kwargs) -> ImageDataset`` under ``name``."""
    def wrap(fn):
        _REGISTRY[name] = DatasetInfo(name, description, tuple(splits), default_split, fn, source, folder)
        BUILTIN_DATASETS[name] = description
        return fn
    return wrap


def list_datasets() -> dict[str, DatasetInfo]:
    return dict(_REGISTRY)


def dataset_info(name: str) -> DatasetInfo | None:
    return _REGISTRY.get(name)


def local_folder(spec: str) -> Path | None:
    """The image folder a built-in dataset spec (``NAME[:SPLIT]``) reads on this machine, or None."""
    info = _REGISTRY.get(str(spec).partition(":")[0])
    where = find_local(info.folder) if info is not None and info.folder else None
    return where.resolve() if where is not None else None


def load_registered(name: str, split: str | None, **kwargs):
    info = _REGISTRY[name]
    split = split or kwargs.pop("split", None) or info.default_split
    kwargs.pop("split", None)
    if split not in info.splits:
        raise DataError(f"Dataset {name!r} has the splits {list(info.splits)}; got {split!r} "
                        f"(write it as '{name}:{info.default_split}').")
    return info.loader(split, **kwargs)


def data_roots(root=None) -> list[Path]:
    """Where local copies are looked for, first match wins: ``root``, ``$TRANSFERKIT_DATA``, the user cache."""
    roots = [Path(root).expanduser()] if root else []
    roots += [Path(p).expanduser() for p in os.environ.get("TRANSFERKIT_DATA", "").split(os.pathsep) if p]
    roots.append(cache_dir() / "datasets")
    return roots


def find_local(relative: str, root=None) -> Path | None:
    """The first existing ``<root>/<relative>`` (``root`` itself when it already is the target)."""
    for r in data_roots(root):
        for cand in (r / relative, r):
            if cand.exists() and (cand.name == Path(relative).name or cand == r / relative):
                return cand
    return None


def download_target(name: str) -> Path:
    return cache_dir() / "datasets" / name


def not_found(name: str, relative: str, how: str) -> DataError:
    where = ", ".join(str(r / relative) for r in data_roots())
    return DataError(f"Dataset {name!r} not found (looked in {where}) and it could not be downloaded. {how} "
                     f"Or point $TRANSFERKIT_DATA at a folder holding {relative}.")
