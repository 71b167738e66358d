"""Batched feature extraction under ``inference_mode`` with an on-disk cache.

The cache key covers the backbone architecture, its weights, the transform, the layer and the data
fingerprint; embeddings are streamed into a memory-mapped .npy file (bounded memory) that is renamed
into place only when complete, so a half-written cache is never read.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data.dataset import ImageDataset
from ..data.transforms import ImageTransform
from ..utils import atomic_path, cache_dir, fingerprint, state_fingerprint
from .loaders import make_loader


def feature_cache_key(backbone, dataset: ImageDataset, transform, layer=None) -> str:
    return fingerprint(backbone.arch, state_fingerprint(backbone), repr(transform), dataset.fingerprint(), layer)


def _layer_module(backbone, layer):
    if isinstance(layer, int):
        groups = backbone.stage_modules()
        return groups[layer]
    return backbone.model.get_submodule(layer)


@torch.inference_mode()
def extract_features(backbone, dataset: ImageDataset, *, batch_size: int = 256, layer=None, cache: bool | str = True,
                     device=None, num_workers: int = 0, progress: bool = True, dtype=np.float32) -> np.ndarray:
    """Embeddings (N, D) of ``dataset`` (labels ignored) from a frozen ``backbone``.

    Args:
        layer: None for the pooled embedding; an int (stage index of ``stage_modules()``) or a module
            name of ``backbone.model`` for an intermediate layer, global-average-pooled to (N, C).
        cache: True (``~/.cache/transferkit/features``), a directory, or False. A hit costs no forward pass.

    Returns a float32 array; from the cache it is memory-mapped (read-only).
    """
    transform = ImageTransform(backbone.data_config, train=False)
    data = dataset.with_transform(transform)
    path = None
    if cache:
        root = Path(cache) if isinstance(cache, (str, os.PathLike)) else cache_dir() / "features"
        path = root / f"{feature_cache_key(backbone, dataset, transform, layer)}.npy"
        if path.exists():
            try:
                return np.load(path, mmap_mode="r")
            except (ValueError, OSError):
                path.unlink(missing_ok=True)  # unreadable: recompute
    device = torch.device(device) if device else next(backbone.parameters()).device
    was_training = backbone.training
    backbone.eval().to(device)
    captured = {}
    hook = None
    if layer is not None:
        hook = _layer_module(backbone, layer).register_forward_hook(lambda m, i, o: captured.__setitem__("x", o))
    loader = make_loader(data, batch_size, num_workers=num_workers)
    try:
        out, pos = None, 0
        ctx = atomic_path(path, ".npy") if path else None
        tmp = ctx.__enter__() if ctx else None
        try:
            for x, _ in tqdm(loader, desc="extracting features", disable=not progress, leave=False, unit="batch"):
                f = backbone(x.to(device, non_blocking=True))
                if layer is not None:
                    f = captured["x"]
                    f = f.mean(dim=(2, 3)) if f.dim() == 4 else (f.mean(1) if f.dim() == 3 else f)
                f = f.float().cpu().numpy()
                if out is None:
                    shape = (len(data), f.shape[1])
                    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape) if tmp else np.empty(shape, dtype)
                out[pos:pos + len(f)] = f
                pos += len(f)
            if out is None:
                out = np.empty((0, backbone.num_features), dtype)
            if tmp is not None:
                out.flush()
                del out
        except BaseException as e:
            if ctx:
                ctx.__exit__(type(e), e, e.__traceback__)
            raise
        if ctx:
            ctx.__exit__(None, None, None)
            return np.load(path, mmap_mode="r")
        return out
    finally:
        if hook is not None:
            hook.remove()
        backbone.train(was_training)
