"""Batched feature extraction under ``inference_mode`` with an on-disk cache.

The cache key covers the backbone architecture, its weights, the transform, the layer and the data
fingerprint; embeddings are streamed batch by batch into a .npy file (bounded memory: only one batch of
embeddings is held at a time, and the batch size is capped so that one batch's activations fit a memory
budget measured for the model at its input size, see :func:`inference_batch_size`) that is renamed into place only when complete, so a half-written cache
is never read; an unreadable or truncated cache file is ignored and recomputed. Non-finite embeddings
(a diverged or corrupted backbone) raise instead of being cached.
"""
from __future__ import annotations

import contextlib
import os
import warnings
import weakref
from pathlib import Path

import numpy as np
import torch

from ..data.dataset import ImageDataset
from ..data.transforms import ImageTransform
from ..errors import DataError
from ..utils import atomic_path, cache_dir, fingerprint, progress_bar, state_fingerprint
from .loaders import make_loader
from .memory import batch_for_budget, budget_mb, probe_once


_UNWRITABLE: set[Path] = set()


def _cache_file(stack: contextlib.ExitStack, path: Path) -> Path | None:
    """The temporary file the features stream into, renamed onto ``path`` when complete; None (run without the
    cache, with a warning) when the cache folder cannot be written: a read-only ``$TRANSFERKIT_CACHE`` costs a
    recomputation next time, never the run."""
    try:
        return stack.enter_context(atomic_path(path, ".npy"))
    except OSError as e:
        if path.parent in _UNWRITABLE:
            return None
        _UNWRITABLE.add(path.parent)  # said once per folder and process, not once per extraction
        warnings.warn(f"The feature cache {path.parent} cannot be written ({e.strerror or e}): the features are "
                      f"computed without caching. Set TRANSFERKIT_CACHE to a writable folder to keep them.",
                      stacklevel=3)
        return None


def feature_cache_key(backbone, dataset: ImageDataset, transform, layer=None) -> str:
    return fingerprint(backbone.arch, state_fingerprint(backbone), repr(transform), dataset.fingerprint(), layer)


# Activation memory one inference batch may use (MiB); $TRANSFERKIT_INFERENCE_MEMORY_MB overrides it. On a
# CPU the activations are process memory: 128 MiB keeps EfficientNet-Lite0 at 224 px under 1.2 GiB peak RSS
# (batch 6; 256 MiB gave batch 13 and 1.4 GiB, see benchmarks/sections/reliability.md) at the same images/s.
# On a GPU they live in device memory, where larger batches pay off.
DEFAULT_INFERENCE_MEMORY_MB = 128.0
DEFAULT_GPU_INFERENCE_MEMORY_MB = 1024.0


def _default_budget_mb(device=None) -> float:
    return budget_mb("TRANSFERKIT_INFERENCE_MEMORY_MB", DEFAULT_INFERENCE_MEMORY_MB, DEFAULT_GPU_INFERENCE_MEMORY_MB,
                     device)


_ACTIVATION_BYTES: "weakref.WeakKeyDictionary[torch.nn.Module, dict]" = weakref.WeakKeyDictionary()


def activation_bytes_per_image(model: torch.nn.Module, input_shape, device=None) -> int:
    """:func:`_probe_activation_bytes`, measured once per model, input shape and device (activation sizes
    do not depend on the weights, so extraction and every predict/evaluate call share one probe)."""
    device = torch.device(device) if device else next(model.parameters()).device
    return probe_once(_ACTIVATION_BYTES, model, input_shape, device, _probe_activation_bytes)


@torch.inference_mode()
def _probe_activation_bytes(model: torch.nn.Module, input_shape, device) -> int:
    """Peak activation memory of one image through ``model`` under inference, estimated from one forward
    pass of a single image: the largest input + output of any leaf module (what must be alive together),
    times 2 for the tensors kept across a block (residual branches, concatenations) and kernel workspaces
    (calibrated on EfficientNet-Lite0 and small CNNs on CPU: the measured peak is 1.5-2x the largest input + output)."""
    peak = [0]

    def nbytes(x):
        if isinstance(x, torch.Tensor):
            return x.numel() * x.element_size()
        if isinstance(x, (tuple, list)):
            return sum(nbytes(t) for t in x)
        if isinstance(x, dict):
            return sum(nbytes(t) for t in x.values())
        return 0

    def hook(module, inputs, output):
        peak[0] = max(peak[0], nbytes(inputs) + nbytes(output))

    handles = [m.register_forward_hook(hook) for m in model.modules() if not any(True for _ in m.children())]
    was_training = model.training
    try:
        model.eval()
        model(torch.zeros((1, *input_shape), device=device))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return max(1, 2 * peak[0])


def inference_batch_size(model: torch.nn.Module, input_shape, *, max_batch: int = 256,
                         memory_budget_mb: float | None = None, device=None) -> int:
    """The inference batch size for ``model`` on inputs of ``input_shape`` (C, H, W): as large as
    ``max_batch`` while one batch's activations fit ``memory_budget_mb`` (default
    $TRANSFERKIT_INFERENCE_MEMORY_MB, else 128 MiB on a CPU and 1 GiB on a GPU). A small model at a small
    size keeps ``max_batch``; an ImageNet model at 224 px or more gets a batch of a few to tens, so peak memory
    does not depend on the settings."""
    dev = torch.device(device) if device else next(model.parameters()).device
    budget = _default_budget_mb(dev) if memory_budget_mb is None else float(memory_budget_mb)
    return batch_for_budget(activation_bytes_per_image(model, input_shape, device), budget, max_batch)


def _layer_module(backbone, layer):
    if isinstance(layer, int):
        groups = backbone.stage_modules()
        return groups[layer]
    return backbone.model.get_submodule(layer)


@torch.inference_mode()
def extract_features(backbone, dataset: ImageDataset, *, batch_size: int = 256, layer=None, cache: bool | str = True,
                     device=None, num_workers: int = 0, progress: bool = True, dtype=np.float32,
                     check_finite: bool = True, memory_budget_mb: float | None = None) -> np.ndarray:
    """Embeddings (N, D) of ``dataset`` (labels ignored) from a frozen ``backbone``.

    Args:
        batch_size: the largest inference batch; it is lowered so that one batch's activations fit
            ``memory_budget_mb`` (see :func:`inference_batch_size`; ``memory_budget_mb=float('inf')``
            keeps ``batch_size`` as given).
        layer: None for the pooled embedding; an int (stage index of ``stage_modules()``) or a module
            name of ``backbone.model`` for an intermediate layer, global-average-pooled to (N, C).
        cache: True (``~/.cache/transferkit/features``), a directory, or False. A hit costs no forward pass.
        check_finite: raise :class:`DataError` (nothing is cached) when an embedding holds NaN or inf.

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
                cached = np.load(path, mmap_mode="r")
                if cached.ndim == 2 and cached.shape[0] == len(dataset):
                    return cached
            except (ValueError, OSError, EOFError):
                pass
            with contextlib.suppress(OSError):  # a read-only cache keeps it; the rename below would then warn
                path.unlink(missing_ok=True)  # unreadable, truncated or the wrong shape: recompute
    device = torch.device(device) if device else next(backbone.parameters()).device
    was_training = backbone.training
    backbone.eval().to(device)
    captured = {}
    hook = None
    if layer is not None:
        hook = _layer_module(backbone, layer).register_forward_hook(lambda m, i, o: captured.__setitem__("x", o))
    batch_size = inference_batch_size(backbone, (transform.channels, *transform.size), max_batch=batch_size,
                                      memory_budget_mb=memory_budget_mb, device=device)
    loader = make_loader(data, batch_size, num_workers=num_workers)
    try:
        with contextlib.ExitStack() as stack:
            tmp = _cache_file(stack, path) if path else None
            fh = out = None
            pos, n_bad, first_bad = 0, 0, []
            for x, _ in progress_bar(loader, desc="extracting features", enabled=progress, leave=False, unit="batch"):
                f = backbone(x.to(device, non_blocking=True))
                if layer is not None:
                    f = captured["x"]
                    f = f.mean(dim=(2, 3)) if f.dim() == 4 else (f.mean(1) if f.dim() == 3 else f)
                f = np.ascontiguousarray(f.float().cpu().numpy().reshape(len(f), -1), dtype=dtype)
                if fh is None and out is None:
                    shape = (len(data), f.shape[1])
                    if tmp is not None:  # stream: a .npy header, then one batch of rows at a time
                        fh = stack.enter_context(open(tmp, "wb"))
                        np.lib.format.write_array_header_1_0(fh, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                                                                  "fortran_order": False, "shape": shape})
                    else:
                        out = np.empty(shape, dtype)
                if check_finite:
                    bad = np.flatnonzero(~np.isfinite(f).all(1))
                    n_bad += len(bad)
                    first_bad += [pos + int(b) for b in bad[:max(0, 3 - len(first_bad))]]
                if fh is not None:
                    fh.write(f.tobytes())
                else:
                    out[pos:pos + len(f)] = f
                pos += len(f)
            if n_bad:
                raise DataError(
                    f"Backbone {backbone.spec} produced non-finite (NaN or inf) embeddings for {n_bad} of {pos} images "
                    f"(first: {', '.join(dataset.describe(i) for i in first_bad)}). Its weights are likely corrupt or "
                    f"diverged (a NaN/inf loss during training); re-create or re-train it. Nothing was cached.")
            if fh is None and out is None:
                shape = (len(data), backbone.num_features)
                out = np.empty(shape, dtype)
                if tmp is not None:
                    np.save(tmp, out)
            if fh is not None:
                fh.flush()
                os.fsync(fh.fileno())
        if tmp is not None:  # renamed into place: read back memory-mapped
            return np.load(path, mmap_mode="r")
        return out
    finally:
        if hook is not None:
            hook.remove()
        backbone.train(was_training)
