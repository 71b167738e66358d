"""Training memory bounded by design: the physical batch comes from a memory budget, the effective batch from
gradient accumulation.

A training step holds every activation that backward needs, so its memory grows with the batch: EfficientNet-Lite0
at 224 px keeps 76 MiB per image, so a batch of 64 needs 4.75 GiB of activations (6.9 GiB peak RSS measured).
:func:`training_batch_size` measures what one image costs (one probe per model, input shape and device, the
tensors autograd saves for backward) and returns the largest physical batch whose activations fit
``memory_budget_mb``; the :class:`~transferkit.engine.Trainer` then splits each loaded batch into micro-batches of
that size and accumulates their gradients, each micro-batch's loss weighted by its share of the batch, so the
optimizer sees the gradient of the whole batch (exactly, for a loss that is a mean over images and a network
without batch statistics; BatchNorm layers in training mode normalise each micro-batch by its own statistics,
as with any gradient accumulation).
"""
from __future__ import annotations

import os
import weakref

import torch
from torch import nn

# Activation memory one training micro-batch may use (MiB); $TRANSFERKIT_TRAIN_MEMORY_MB overrides it. On a CPU
# activations are process memory; 1 GiB keeps EfficientNet-Lite0 fine-tuning at 224 px at 2.3-2.7 GiB peak RSS
# whatever the batch (BENCHMARKS.md, "Fine-tuning on real photos"). On a GPU they live in device memory.
DEFAULT_TRAIN_MEMORY_MB = 1024.0
DEFAULT_GPU_TRAIN_MEMORY_MB = 16384.0

_SAVED_BYTES: "weakref.WeakKeyDictionary[nn.Module, dict]" = weakref.WeakKeyDictionary()


def budget_mb(variable: str, cpu_mb: float, gpu_mb: float, device=None) -> float:
    """A memory budget in MiB: ``$variable`` when it holds a number ('inf' switches the budget off), else
    ``gpu_mb`` on an accelerator and ``cpu_mb`` on the CPU (or with no device given)."""
    on_gpu = device is not None and torch.device(device).type != "cpu"
    default = gpu_mb if on_gpu else cpu_mb
    try:
        return float(os.environ.get(variable, default))
    except ValueError:
        return default


def default_train_budget_mb(device=None) -> float:
    return budget_mb("TRANSFERKIT_TRAIN_MEMORY_MB", DEFAULT_TRAIN_MEMORY_MB, DEFAULT_GPU_TRAIN_MEMORY_MB, device)


def probe_once(store: "weakref.WeakKeyDictionary", model: nn.Module, input_shape, device, probe) -> int:
    """``probe(model, input_shape, device)``, computed once per model, input shape and device and kept in ``store``
    (activation sizes do not depend on the weights, so every later call of the same model shares the probe)."""
    seen = store.setdefault(model, {})
    key = (tuple(input_shape), str(device))
    if key not in seen:
        seen[key] = probe(model, input_shape, device)
    return seen[key]


def batch_for_budget(per_image: int, budget_mb: float, max_batch: int) -> int:
    """The largest batch (1 to ``max_batch``) whose ``per_image`` bytes each fit ``budget_mb`` MiB."""
    return int(max(1, min(int(max_batch), budget_mb * 2**20 // per_image)))


def training_bytes_per_image(model: nn.Module, input_shape, device=None) -> int:
    """Bytes that one more image adds to a training step of ``model`` on inputs ``input_shape`` (C, H, W):
    the tensors autograd saves for backward, counted once per storage, measured at batch 2 minus batch 1 (so
    weights saved for backward do not count). Calibration: EfficientNet-Lite0 at 224 px saves 76 MiB per image,
    and the peak RSS of its fine-tuning grows by 75 MB per image of batch (4.0 GB at batch 32, 6.4 GB at 64):
    backward's transient gradients reuse what the freed activations leave. Measured once per model, shape and
    device; the model's buffers (BatchNorm running statistics) and its train/eval mode are left as they were."""
    device = torch.device(device) if device else next(model.parameters()).device
    return probe_once(_SAVED_BYTES, model, input_shape, device, _probe_training_bytes)


def _probe_training_bytes(model: nn.Module, input_shape, device) -> int:
    buffers = {k: b.detach().clone() for k, b in model.named_buffers()}
    was_training = model.training
    try:
        model.train()
        one, two = (_saved_bytes(model, (n, *input_shape), device) for n in (1, 2))
    finally:
        with torch.no_grad():
            for k, b in model.named_buffers():
                b.copy_(buffers[k])
        model.train(was_training)
    return max(1, two - one)


def _saved_bytes(model: nn.Module, shape, device) -> int:
    storages: dict[int, int] = {}

    def pack(t):
        if t.device.type != "meta":
            s = t.untyped_storage()
            storages[s.data_ptr()] = s.nbytes()
        return t

    x = torch.zeros(shape, device=device, requires_grad=True)
    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(x)
    del out
    return sum(storages.values())


def training_batch_size(model: nn.Module, input_shape, *, max_batch: int, memory_budget_mb: float | None = None,
                        device=None) -> int:
    """The physical training batch for ``model`` on inputs ``input_shape`` (C, H, W): ``max_batch`` when its
    activations fit ``memory_budget_mb`` (default $TRANSFERKIT_TRAIN_MEMORY_MB, else 1 GiB on a CPU and 16 GiB
    on a GPU), else the largest batch that fits (at least 1)."""
    dev = torch.device(device) if device else next(model.parameters()).device
    budget = default_train_budget_mb(dev) if memory_budget_mb is None else float(memory_budget_mb)
    return batch_for_budget(training_bytes_per_image(model, input_shape, dev), budget, max_batch)


def batch_length(batch) -> int | None:
    """The common first dimension of every tensor in a (nested) batch, or None when they differ or there is none."""
    sizes = set()

    def walk(b):
        if isinstance(b, torch.Tensor):
            sizes.add(b.shape[0] if b.dim() else None)
        elif isinstance(b, (list, tuple)):
            for v in b:
                walk(v)
        elif isinstance(b, dict):
            for v in b.values():
                walk(v)

    walk(batch)
    return sizes.pop() if len(sizes) == 1 else None


def split_batch(batch, size: int) -> list:
    """``batch`` (tensors in nested tuples, lists and dicts sharing their first dimension) as the fewest
    consecutive micro-batches of at most ``size`` images, their sizes as even as possible (32 at most 13 at a
    time: 11, 11, 10, so that no micro-batch's BatchNorm statistics come from a handful of images); the whole
    batch, alone, when it is no larger or not splittable."""
    n = batch_length(batch)
    if n is None or n <= size:
        return [batch]
    k = -(-n // size)
    bounds = [n * i // k for i in range(k + 1)]

    def take(b, lo, hi):
        if isinstance(b, torch.Tensor):
            return b[lo:hi]
        if isinstance(b, (list, tuple)):
            return type(b)(take(v, lo, hi) for v in b)
        if isinstance(b, dict):
            return {k: take(v, lo, hi) for k, v in b.items()}
        return b

    return [take(batch, lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:])]
