"""The one inference loop of the network-training strategies, and the eval-mode context it runs in.

Training code that scores data between epochs (domain adaptation's validators, few-shot validation) and
``predict`` both go through :func:`infer`, so every model is scored in eval mode, without autograd, on batches
the caller's loader has already fitted to the inference memory budget (``engine.features.inference_batch_size``),
and a model that was training goes back to training afterwards.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable

import torch
from torch import nn


@contextlib.contextmanager
def evaluating(*modules: nn.Module):
    """``modules`` in eval mode for the block, under ``inference_mode``; each module's own training flag is
    restored on exit, also when the block raises."""
    was = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        for m, w in zip(modules, was):
            m.train(w)


def infer(batches: Iterable, fn: Callable[[torch.Tensor], torch.Tensor], *, device=None,
          modules: tuple[nn.Module, ...] = (), targets: bool = False):
    """``fn(x)`` of every ``(x, y)`` batch of ``batches`` (``x`` moved to ``device``), as float32 on the CPU,
    concatenated along the first dimension; ``modules`` are in eval mode meanwhile (:func:`evaluating`). With
    ``targets``, also the batches' ``y`` concatenated: ``(outputs, targets)``. An empty loader gives empty (0,)
    tensors."""
    outs, ys = [], []
    with evaluating(*modules):
        for x, y in batches:
            outs.append(fn(x if device is None else x.to(device)).float().cpu())
            if targets:
                ys.append(torch.as_tensor(y).cpu())
    out = torch.cat(outs) if outs else torch.zeros(0)
    return (out, torch.cat(ys) if ys else torch.zeros(0)) if targets else out
