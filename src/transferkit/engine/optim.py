"""Optimizers from named parameter groups (one learning rate per group)."""
from __future__ import annotations

import torch

from ..errors import check_choice

OPTIMIZERS = ("adamw", "adam", "sgd")


def build_optimizer(name: str, groups, *, lr: float, weight_decay: float = 0.0, momentum: float = 0.9):
    """``groups``: parameters, or dicts ``{"params": [...], "lr": ..., "name": ...}``; missing lr -> ``lr``.

    Parameters without ``requires_grad`` stay in the optimizer: they receive no gradient and are
    skipped until unfrozen, so schedules and per-group rates continue across unfreezing.
    """
    check_choice("optimizer", "optimizer", name, OPTIMIZERS)
    groups = list(groups)
    if groups and not isinstance(groups[0], dict):
        groups = [{"params": groups}]
    seen, clean = set(), []
    for g in groups:
        params = [p for p in g["params"] if id(p) not in seen]
        seen.update(id(p) for p in params)
        if params:
            clean.append({**g, "params": params, "lr": g.get("lr", lr)})
    if name == "sgd":
        return torch.optim.SGD(clean, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=True)
    cls = torch.optim.AdamW if name == "adamw" else torch.optim.Adam
    return cls(clean, lr=lr, weight_decay=weight_decay)
