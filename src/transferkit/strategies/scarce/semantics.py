"""Class semantics for zero-shot learning: attribute matrices and text descriptions resolved from any form a user
gives them, and descriptions embedded by a sentence encoder."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ...backbones.encoders import load_sentence_encoder
from ...data import ImageDataset
from ...data.semantics import BUILTIN_SEMANTICS, builtin_semantics, load_attributes, load_descriptions
from ...errors import DataError, TransferkitError


def resolve_semantics(semantics, train: ImageDataset | None = None, owner: str = "zero-shot") -> dict:
    """A semantics dict from: a dict, a path (.csv attributes / .json descriptions), 'fashion-mnist', 'digits',
    or None (``train.semantics``). The dict needs ``classes`` (all classes, seen and unseen)."""
    if semantics is None and train is not None:
        semantics = train.semantics
    if semantics is None:
        raise TransferkitError(f"{owner} needs class semantics: pass semantics=<dict | attribute .csv | "
                               f"descriptions .json | 'fashion-mnist' | 'digits'> or a dataset with .semantics.")
    if isinstance(semantics, str) and semantics in BUILTIN_SEMANTICS:
        return builtin_semantics(semantics)
    if isinstance(semantics, (str, os.PathLike)):
        p = Path(semantics)
        return load_descriptions(p) if p.suffix.lower() == ".json" else load_attributes(p)
    if not isinstance(semantics, dict):
        raise TransferkitError(f"{owner}: 'semantics' must be a dict or a path; got {type(semantics).__name__}.")
    sem = dict(semantics)
    if "classes" not in sem:
        if "descriptions" in sem and "attributes" not in sem:
            sem["classes"] = list(sem["descriptions"])
        elif train is not None:
            sem["classes"] = list(train.classes)
        else:
            raise TransferkitError(f"{owner}: the semantics dict needs 'classes' (the class of each attribute row).")
    if "attributes" in sem:
        a = np.asarray(sem["attributes"], dtype=np.float64)
        if a.ndim != 2 or len(a) != len(sem["classes"]):
            raise DataError(f"{owner}: 'attributes' must be (n_classes={len(sem['classes'])}, M); got shape {a.shape}.")
        if not np.isfinite(a).all():
            bad = [str(sem["classes"][i]) for i in np.flatnonzero(~np.isfinite(a).all(axis=1))]
            raise DataError(f"{owner}: the attribute table holds NaN or inf values (classes {bad[:10]}); fill them in.")
        sem["attributes"] = a
    return sem


def embed_descriptions(descriptions: dict, classes, encoder=None) -> np.ndarray:
    """(n_classes, E): per class, the re-normalised mean of its L2-normalised sentence embeddings."""
    missing = [c for c in classes if not descriptions.get(c)]
    if missing:
        raise DataError(f"No description for classes {missing}; the descriptions cover {list(descriptions)}.")
    encoder = encoder if encoder is not None and not isinstance(encoder, (str, os.PathLike)) else load_sentence_encoder(encoder)
    out = []
    for c in classes:
        e = encoder.encode(list(descriptions[c]), convert_to_numpy=True, normalize_embeddings=True)
        m = e.mean(0)
        out.append(m / max(np.linalg.norm(m), 1e-12))
    return np.stack(out).astype(np.float32)
