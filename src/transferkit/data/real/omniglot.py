"""Omniglot: 1,623 handwritten characters of 50 alphabets, 20 drawers each (Lake, Salakhutdinov & Tenenbaum,
"Human-level concept learning through probabilistic program induction", Science 2015).

Splits: ``background`` (30 alphabets, 964 characters) and ``evaluation`` (20 alphabets, 659 characters), the
standard split (torchvision's ``Omniglot(background=True/False)``), plus the paper's two small background
sets ``background_small1`` (5 alphabets: Balinese, Early_Aramaic, Greek, Korean, Latin; 136 characters) and
``background_small2`` (5 alphabets: Greek, Japanese_(katakana), Latin, Sanskrit, Tagalog; 156 characters).
The two small sets share Greek and Latin (the same files): a few-shot protocol that trains on one and tests
on the other must drop the shared alphabets (``alphabets=`` / ``exclude_alphabets=``).

A class is one character, named ``Alphabet/characterNN`` (few-shot episodes draw characters); the alphabet
is the ``domains`` column. Images are 105x105 grayscale, black strokes on white, decoded straight from the
zip into one uint8 array (N, H, W): no extraction. ``image_size`` resizes while decoding (area averaging;
28 px is the usual few-shot size and keeps the array 14x smaller); ``invert=True`` gives white strokes on
black, as in Snell et al.'s ProtoNet code. :func:`with_rotations` adds the rotated characters as new classes
(Santoro et al. 2016; Vinyals et al. 2016; Snell et al. 2017).
"""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from ...errors import DataError
from ..dataset import ImageDataset
from ..registry import download_target, find_local, not_found, register_dataset

TORCHVISION = {"background": "images_background", "evaluation": "images_evaluation"}
SMALL_URL = "https://github.com/brendenlake/omniglot/raw/master/python/{}.zip"
FOLDERS = {**TORCHVISION, "background_small1": "images_background_small1",
           "background_small2": "images_background_small2"}


def _candidates(folder: str) -> list[str]:
    """Relative places of a split's zip (or unpacked folder): ours, torchvision's ``omniglot-py``, and
    torchvision's download inside our cache."""
    out = []
    for parent in ("omniglot", "omniglot-py", "omniglot/omniglot-py"):
        out += [f"{parent}/{folder}.zip", f"{parent}/{folder}"]
    return out


def _find(folder: str, root) -> Path | None:
    for rel in _candidates(folder):
        where = find_local(rel, root)
        if where is not None and (where.suffix == ".zip" and where.is_file() or where.is_dir()):
            return where
    return None


def _download(split: str, folder: str) -> Path | None:
    target = download_target("omniglot")
    try:
        if split in TORCHVISION:
            from torchvision.datasets import Omniglot

            Omniglot(str(target), background=split == "background", download=True)
            return target / "omniglot-py" / f"{folder}.zip"
        from torchvision.datasets.utils import download_url

        download_url(SMALL_URL.format(folder), str(target), f"{folder}.zip")
        return target / f"{folder}.zip"
    except Exception:  # offline
        return None


def _locate(split: str, root, download: bool) -> Path:
    folder = FOLDERS[split]
    where = _find(folder, root)
    if where is None and download:
        where = _download(split, folder)
    if where is None or not where.exists():
        how = (f"Run once with network access (torchvision's Omniglot(background={split == 'background'}, "
               f"download=True) fetches it)" if split in TORCHVISION else f"Download {SMALL_URL.format(folder)}")
        raise not_found("omniglot", f"omniglot/{folder}.zip", how + ".")
    return where


def _members(where: Path):
    """Sorted (alphabet, character, name, reader) of every PNG of a zip or an unpacked folder."""
    if where.is_dir():
        files = sorted(p for p in where.rglob("*.png"))
        return [(p.parent.parent.name, p.parent.name, p.name, p.read_bytes) for p in files], None
    try:
        z = zipfile.ZipFile(where)
    except (zipfile.BadZipFile, OSError) as e:  # cut short by an interrupted download, or not a zip at all
        raise DataError(f"omniglot: {where} is not a readable zip ({e}); the copy is damaged or incomplete, "
                        f"download it again.") from None
    names = sorted(n for n in z.namelist() if n.lower().endswith(".png") and n.count("/") >= 2)
    out = []
    for n in names:
        alphabet, character, file = n.split("/")[-3:]
        out.append((alphabet, character, file, (lambda n=n: z.read(n))))
    return out, z


def _decode(data: bytes, steps: dict) -> np.ndarray:
    from PIL import Image

    from ..images import preprocess

    return np.asarray(preprocess(Image.open(io.BytesIO(data)).convert("L"), steps), dtype=np.uint8)


def _decode_member(member, where: Path, steps: dict) -> np.ndarray:
    alphabet, character, file, read = member
    try:
        return _decode(read(), steps)
    except Exception as e:  # a damaged zip member or PNG
        from PIL import UnidentifiedImageError

        # PIL names the in-memory buffer ("<_io.BytesIO object at 0x...>"), never the file: say what it is instead
        reason = "not a readable PNG image" if isinstance(e, UnidentifiedImageError) else f"{type(e).__name__}: {e}"
        raise DataError(f"omniglot: cannot decode {where}/{alphabet}/{character}/{file} ({reason}); "
                        f"the copy is damaged, download it again.") from None


@register_dataset("omniglot", description="Omniglot handwritten characters (Lake et al. 2015), a class per "
                  "character, 20 drawers, 105x105; background 964 / evaluation 659 / background_small1 136 / "
                  "background_small2 156 characters", splits=tuple(FOLDERS), default_split="background",
                  source="torchvision.datasets.Omniglot; github.com/brendenlake/omniglot")
def load_omniglot(split: str = "background", root=None, download: bool = True, image_size=None,
                  invert: bool = False, alphabets=None, exclude_alphabets=None, on_error: str = "raise") -> ImageDataset:
    """Omniglot ``split`` as a uint8 array dataset (N, H, W); classes ``Alphabet/characterNN``, domains = alphabet.

    Args:
        image_size: resize while decoding (int or (H, W)); None keeps 105x105.
        invert: white strokes on black (255 - pixel).
        alphabets / exclude_alphabets: keep only / drop these alphabets (names as in the zip).
        on_error: accepted for the CLI's ``--on-error``; a PNG that does not decode always raises, naming it.
    """
    where = _locate(split, root, download)
    size = None if image_size is None else ((int(image_size),) * 2 if np.isscalar(image_size) else tuple(map(int, image_size)))
    # what a model trained on these arrays must redo on a raw PNG (recorded in the dataset, then in the model)
    steps = {"invert": bool(invert), **({"size": list(size), "resample": "box"} if size is not None else {})}
    members, z = _members(where)
    try:
        present = sorted({m[0] for m in members})
        for given in (alphabets, exclude_alphabets):
            unknown = sorted(set(given or ()) - set(present))
            if unknown:
                raise DataError(f"omniglot:{split} has no alphabet(s) {unknown}; its alphabets are {present}.")
        keep = set(alphabets) if alphabets is not None else set(present)
        keep -= set(exclude_alphabets or ())
        members = [m for m in members if m[0] in keep]
        if not members:
            raise DataError(f"omniglot:{split}: no images left in {where} (alphabets {sorted(keep)}).")
        classes = sorted({f"{a}/{c}" for a, c, _, _ in members})
        index = {c: i for i, c in enumerate(classes)}
        images = np.stack([_decode_member(m, where, steps) for m in members])
    finally:
        if z is not None:
            z.close()
    labels = np.array([index[f"{a}/{c}"] for a, c, _, _ in members], dtype=np.int64)
    domains = [a for a, _, _, _ in members]
    return ImageDataset(images, labels, classes, domains=domains, name=f"omniglot-{split}", root=str(where),
                        preprocess=steps if invert or size is not None else None)


def with_rotations(ds: ImageDataset, angles=(90, 180, 270)) -> ImageDataset:
    """``ds`` plus every image rotated by each angle (multiples of 90), each (class, angle) a new class named
    ``<class>@rot<angle>`` (Omniglot class augmentation: Santoro et al. 2016, Vinyals et al. 2016, Snell et
    al. 2017). Needs a square uint8 array dataset."""
    if not ds.is_array or ds.images.shape[1] != ds.images.shape[2]:
        raise DataError(f"with_rotations needs square image arrays; {ds.name or 'the dataset'} has "
                        f"{'files' if not ds.is_array else ds.images.shape[1:]}.")
    bad = [a for a in angles if a % 90 or a % 360 == 0]
    if bad:
        raise DataError(f"with_rotations: angles must be multiples of 90 other than 0/360; got {bad}.")
    images, labels, classes = [ds.images], [ds.labels], list(ds.classes)
    domains = [ds.domains] if ds.domains is not None else None
    for k, a in enumerate(angles, start=1):
        images.append(np.ascontiguousarray(np.rot90(ds.images, a // 90, axes=(1, 2))))
        labels.append(np.where(ds.labels >= 0, ds.labels + k * ds.num_classes, -1))
        classes += [f"{c}@rot{a}" for c in ds.classes]
        if domains is not None:
            domains.append(ds.domains)
    return ImageDataset(np.concatenate(images), np.concatenate(labels), classes,
                        domains=None if domains is None else np.concatenate(domains),
                        name=f"{ds.name}+rot", root=ds.root, preprocess=ds.preprocess)
