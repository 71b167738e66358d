"""The textbook PGD loop: the baseline of benchmarks/bench_attacks.py and a cross-check in the tests.

Not part of transferkit: it accumulates parameter gradients with ``.backward()`` each step, which the library's
``robustness.pgd`` avoids.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def reference_pgd(model: nn.Module, x, y, eps, steps, step_size):
    """A straightforward PGD loop (parameter gradients accumulated, ``.backward()`` per step); the
    benchmark's baseline, and a cross-check in the tests."""
    model.eval()
    x_adv = x + torch.empty_like(x).uniform_(-eps, eps)
    x_adv = x_adv.clamp(0, 1).detach()
    for _ in range(steps):
        x_adv.requires_grad_(True)
        loss = F.cross_entropy(model(x_adv), y)
        model.zero_grad()
        loss.backward()
        x_adv = x_adv.detach() + step_size * x_adv.grad.sign()
        x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0, 1).detach()
    model.zero_grad()
    return x_adv
