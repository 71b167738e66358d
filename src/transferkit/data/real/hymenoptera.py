"""Hymenoptera: ants and bees photos (ImageNet images), the PyTorch transfer-learning tutorial's dataset.

``train`` holds 124 ants + 121 bees, ``val`` 70 + 83. The tutorial's zip ships ``train/ants/imageNotFound.gif``,
a 300x300 "image not found" placeholder that decodes as a valid GIF: it is not a photo of an ant, so it is
dropped with a warning naming its path (``keep_placeholders=True`` keeps it).
"""
from __future__ import annotations

import warnings

from ..loaders import from_folder
from ..registry import download_target, find_local, not_found, register_dataset

URL = "https://download.pytorch.org/tutorial/hymenoptera_data.zip"
FOLDER = "hymenoptera_data"
PLACEHOLDERS = ("imageNotFound.gif",)


def _locate(root, download: bool):
    where = find_local(FOLDER, root)
    if where is None and download:
        try:
            from torchvision.datasets.utils import download_and_extract_archive

            target = download_target("hymenoptera")
            download_and_extract_archive(URL, str(target))
            where = target / FOLDER
        except Exception:  # offline
            where = None
    if where is None or not (where / "train").is_dir():
        raise not_found("hymenoptera", FOLDER, f"Download {URL} and unzip it.")
    return where


@register_dataset("hymenoptera", description="ants vs bees photos (the PyTorch transfer-learning tutorial), "
                  "train 244 (+1 placeholder GIF, dropped) / val 153, 2 classes", splits=("train", "val", "test"),
                  default_split="train", source=URL, folder=FOLDER)
def load_hymenoptera(split: str = "train", root=None, download: bool = True, on_error: str = "skip",
                     keep_placeholders: bool = False, validate: bool = True):
    """``split`` is 'train' or 'val' ('test' is an alias of 'val': the tutorial has no third split)."""
    where = _locate(root, download) / ("val" if split == "test" else split)
    ds = from_folder(where, on_error=on_error, name=f"hymenoptera-{split}", validate=validate)
    if keep_placeholders:
        return ds
    drop = [i for i, p in enumerate(ds.images) if p.rsplit("/", 1)[-1] in PLACEHOLDERS]
    for i in drop:
        warnings.warn(f"hymenoptera: skipping {ds.images[i]}, a placeholder image, not a photo "
                      f"(keep_placeholders=True keeps it).", stacklevel=2)
    keep = [i for i in range(len(ds)) if i not in set(drop)]
    out = ds.subset(keep) if drop else ds
    out.name, out.root = ds.name, ds.root
    return out
