"""Speed and size of a network: CPU latency per image and bytes on disk.

These take a module (or any callable), never a strategy, so that export, distillation and the advisor measure the
same way. ``transferkit.export`` wraps them for fitted strategies.

Example:
    >>> measure_latency(net, (3, 224, 224), batch_size=1)     # ms per image, median, 1 intra-op thread
    >>> size_on_disk(net)                                      # bytes as safetensors
"""
from __future__ import annotations

import os
import statistics
import tempfile
import time

import torch
from torch import nn


def median_time(fn, *, warmup: int = 5, repeats: int = 20, min_time: float = 0.5) -> float:
    """Median seconds of one call of ``fn`` after ``warmup`` calls; at least ``repeats`` timed calls, more until
    ``min_time`` seconds have passed (at most 50x ``repeats``)."""
    for _ in range(warmup):
        fn()
    times, t_start = [], time.perf_counter()
    while len(times) < repeats or (time.perf_counter() - t_start < min_time and len(times) < 50 * repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure_latency(module: nn.Module, input_shape, batch_size: int = 1, *, threads: int | None = 1, warmup: int = 5,
                    repeats: int = 20, min_time: float = 0.5, seed: int = 0) -> float:
    """PyTorch eager CPU latency of ``module`` in milliseconds **per image** on a random batch of
    ``(batch_size, *input_shape)`` in [0, 1], under ``inference_mode``.

    ``threads``: intra-op threads during the measurement (default 1, reproducible on shared machines; None keeps
    the current setting).
    """
    module = module.eval().cpu()
    x = torch.rand((batch_size, *tuple(input_shape)), generator=torch.Generator().manual_seed(seed))
    old = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            t = median_time(lambda: module(x), warmup=warmup, repeats=repeats, min_time=min_time)
    finally:
        torch.set_num_threads(old)
    return 1000.0 * t / batch_size


def size_on_disk(module: nn.Module) -> int:
    """Bytes of ``module``'s weights written as safetensors (parameters and buffers)."""
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "m.safetensors")
        save_file(state, p)
        return os.path.getsize(p)
