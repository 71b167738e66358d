"""Supervised pre-training of a backbone on a source dataset (the offline stand-in for hub weights).

``pretrain_backbone`` trains ``arch`` from scratch on ``source`` (optionally a subset of its classes)
and writes ``backbone.safetensors`` + ``result.json`` to ``out``; ``create_backbone(f"file:{out}")``
loads it.
"""
from __future__ import annotations

import time
from pathlib import Path

from .backbones import save_backbone
from .data import ImageDataset, restrict_classes, stratified_split
from .engine import write_result
from .errors import DataError


def pretrain_backbone(source: ImageDataset, out, *, arch: str = "builtin:small-cnn", classes=None, epochs: int = 10,
                      batch_size: int = 128, lr: float = 2e-3, augment: str = "none", input_size=None,
                      val_fraction: float = 0.1, seed: int = 0, progress: bool = True, **trainer_kwargs) -> Path:
    """Train ``arch`` from scratch on ``source`` and save it; returns the path of backbone.safetensors.

    Args:
        classes: class names (or indices) of ``source`` to train on (e.g. the source half of a class split).
    """
    from .strategies.reuse.finetune import FineTune
    from .strategies.reuse.recipe import PLAIN_RECIPE

    if classes is not None:
        missing = [c for c in classes if isinstance(c, str) and c not in source.classes]
        if missing:
            raise DataError(f"pretrain: classes {missing} are not in {source.name}; its classes are {source.classes}.")
        idx = [source.classes.index(c) if isinstance(c, str) else int(c) for c in classes]
        source = restrict_classes(source, idx)
    train, val = stratified_split(source, val_fraction, seed=seed) if val_fraction else (source, None)
    out = Path(out)
    model = FineTune(backbone=arch, pretrained=False, epochs=epochs, batch_size=batch_size, lr=lr, augment=augment,
                     input_size=input_size, seed=seed, progress=progress, checkpoint_dir=out / "checkpoints",
                     **{**PLAIN_RECIPE, **trainer_kwargs})
    t0 = time.perf_counter()
    model.fit(train)
    path = save_backbone(model.backbone_, out / "backbone.safetensors")
    metrics = model.evaluate(val) if val is not None else {}
    write_result(out, model.result(metrics, data={"source": source.name, "classes": source.classes,
                                                  "n_train": len(train)},
                                   extra={"backbone_file": str(path), "pretrain_s": time.perf_counter() - t0}))
    return path
