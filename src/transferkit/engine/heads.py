"""Per-episode linear heads, fitted for many few-shot episodes at once.

Chen et al. (2019)'s "Baseline" evaluation fits a fresh linear (or cosine) classifier on each episode's support
features: 100 Adam steps on at most a few dozen vectors. The Trainer is the wrong tool for that, and the one
exception to "every gradient step goes through the Trainer" besides MAML's inner loop and EWC's Fisher estimate:
its loaders, Fabric wrapper, callbacks and checkpoints cost more than such a step, and 600 evaluation episodes would
mean 600 Trainer runs. Here the episodes are stacked into one tensor and all their heads are fitted together, each
head seeing only its own episode's support set (the loss is a sum over episodes, so their gradients do not mix).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def fit_episode_heads(support: torch.Tensor, labels: torch.Tensor, query: torch.Tensor, n_way: int, *,
                      steps: int = 100, lr: float = 0.01, cosine: bool = False, seed: int = 0) -> torch.Tensor:
    """Query logits (E, NQ, n_way) of a head fitted per episode on its support set.

    ``support`` (E, NK, D) and ``labels`` (E, NK) in ``0..n_way-1``; ``query`` (E, NQ, D). Each head is linear
    (``x @ W + b``, W drawn from N(0, 0.01^2) with generator ``seed``) or, with ``cosine``, Baseline++'s scaled
    cosine similarity ``10 cos(x, w_c)``; ``steps`` Adam steps at ``lr`` on the support cross-entropy, summed over
    each episode's support and averaged over its NK images. Runs with autograd on even inside ``inference_mode``.
    """
    with torch.inference_mode(False), torch.enable_grad():
        s, sy, q = support.clone(), labels.clone(), query.clone()
        g = torch.Generator().manual_seed(seed)
        w = (0.01 * torch.randn(s.shape[0], s.shape[-1], n_way, generator=g)).requires_grad_(True)
        b = torch.zeros(s.shape[0], 1, n_way, requires_grad=True)
        opt = torch.optim.Adam([w, b], lr=lr)

        def logits(x):
            if cosine:
                return 10.0 * F.normalize(x, dim=-1) @ F.normalize(w, dim=1)
            return x @ w + b

        for _ in range(steps):
            loss = F.cross_entropy(logits(s).reshape(-1, n_way), sy.reshape(-1), reduction="sum") / s.shape[1]
            opt.zero_grad()
            loss.backward()
            opt.step()
        return logits(q).detach()
