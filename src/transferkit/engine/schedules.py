"""Learning-rate schedules as step -> multiplier functions, applied through torch's LambdaLR.

Per-group base learning rates (discriminative fine-tuning) are preserved: every group's rate is its
own base rate times the multiplier.
"""
from __future__ import annotations

import math

from torch.optim.lr_scheduler import LambdaLR

from ..errors import check_choice

SCHEDULES = ("constant", "cosine", "onecycle", "linear")


def lr_multiplier(name: str, total_steps: int, warmup_steps: int = 0, *, min_ratio: float = 0.0):
    """The multiplier at step ``s``.

    cosine: linear warmup, then cosine decay to ``min_ratio`` (Loshchilov & Hutter 2017).
    onecycle: 30% warmup from 1/25 to 1, cosine to 1/1e4 (Smith 2018; torch's OneCycleLR defaults).
    linear: warmup, then linear decay to 0. constant: warmup, then 1.
    """
    check_choice("Trainer", "scheduler", name, SCHEDULES)
    total = max(1, total_steps)
    if name == "onecycle":
        up = max(1, int(0.3 * total))

        def f(s):
            if s < up:
                return 1 / 25 + (1 - 1 / 25) * s / up
            p = min(1.0, (s - up) / max(1, total - up))
            return 1e-4 + (1 - 1e-4) * 0.5 * (1 + math.cos(math.pi * p))
        return f

    def f(s):
        if warmup_steps and s < warmup_steps:
            return (s + 1) / warmup_steps
        p = min(1.0, (s - warmup_steps) / max(1, total - warmup_steps))
        if name == "cosine":
            return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * p))
        if name == "linear":
            return 1.0 - p
        return 1.0
    return f


def make_scheduler(optimizer, name: str, total_steps: int, warmup_steps: int = 0) -> LambdaLR:
    """A LambdaLR over ``total_steps`` (resuming restores its state from the checkpoint)."""
    f = lr_multiplier(name, total_steps, warmup_steps)
    for g in optimizer.param_groups:
        g.setdefault("initial_lr", g["lr"])
    return LambdaLR(optimizer, f)
