"""How a multi-task fit combines its task losses: each task's loss masked to its labelled rows, the learnable
weighting state (Kendall et al. 2018's log-variances, GradNorm's weights; Chen et al. 2018), and the multi-task gain
Delta_m that compares the result with single-task training (Maninis et al. 2019; Vandenhende et al. 2021).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

WEIGHTINGS = ("equal", "uncertainty", "gradnorm")


def masked_task_loss(output: torch.Tensor, target: torch.Tensor, kind: str, label_smoothing: float = 0.0) -> torch.Tensor:
    """Loss of one task over the labelled rows only.

    Args:
        output: (B, n_classes) logits, or (B, 1) for a regression task.
        target: (B,) float; class index (classification) or standardised value (regression);
            NaN (and, for classification, negative values) marks a missing label.
        kind: 'classification' (cross-entropy) or 'regression' (mean squared error).

    Returns the mean loss over labelled rows, or a zero that keeps the graph when none is labelled.
    """
    mask = torch.isfinite(target)
    if kind == "classification":
        mask = mask & (target >= 0)
    if not bool(mask.any()):
        return output.sum() * 0.0
    if kind == "classification":
        return F.cross_entropy(output[mask], target[mask].long(), label_smoothing=label_smoothing)
    return F.mse_loss(output[mask].reshape(-1).float(), target[mask].float())


class LossWeighting(nn.Module):
    """Learnable loss-weighting state: ``log_vars`` s_t (uncertainty) or ``weights`` w_t (GradNorm)."""

    def __init__(self, n_tasks: int, method: str):
        super().__init__()
        self.method = method
        self.log_vars = nn.Parameter(torch.zeros(n_tasks), requires_grad=method == "uncertainty")
        self.weights = nn.Parameter(torch.ones(n_tasks), requires_grad=method == "gradnorm")

    def current(self) -> torch.Tensor:
        """The effective weight of each task loss now (T,)."""
        if self.method == "uncertainty":
            return torch.exp(-self.log_vars.detach())
        return self.weights.detach().clone()


def multitask_gain(multi: dict, single: dict, lower_is_better: dict) -> float:
    """Delta_m (Maninis 2019; Vandenhende 2021) in percent: the mean relative change of each task's metric
    from single-task to multi-task, sign-flipped for metrics where lower is better.

    ``multi``/``single``: task -> metric value; ``lower_is_better``: task -> bool.
    """
    terms = []
    for t, m in multi.items():
        s = single[t]
        if s == 0 or not np.isfinite(s) or not np.isfinite(m):
            continue
        sign = -1.0 if lower_is_better[t] else 1.0
        terms.append(sign * (m - s) / abs(s))
    return float(100.0 * np.mean(terms)) if terms else float("nan")


def gradnorm_loss(L: torch.Tensor, labelled: torch.Tensor, w: nn.Parameter, W: nn.Parameter,
                  initial_losses: torch.Tensor, alpha: float) -> torch.Tensor:
    """GradNorm's training loss (Chen et al. 2018): the weighted task losses ``sum w_t L_t`` for the network, plus a
    surrogate term, zero in value, that gives the weights ``w`` exactly GradNorm's gradient: the L1 distance between
    each labelled task's gradient norm ``||grad_W w_t L_t||`` at the shared layer ``W`` and the mean norm times its
    relative inverse training rate ``(L_t / L_t(0)) / mean`` to the power ``alpha``.

    ``L`` (T,) task losses, ``labelled`` (T,) bool: tasks with a labelled row in the batch; ``initial_losses``
    (T,) the first step's losses.
    """
    norms = []
    for li, ok in zip(L, labelled):
        g = torch.autograd.grad(li, W, retain_graph=True, allow_unused=True)[0] if ok and li.requires_grad else None
        norms.append(g.norm() if g is not None else L.new_zeros(()))
    n = torch.stack(norms).detach()
    ratio = (L.detach() / initial_losses)[labelled]
    G = w * n
    target = torch.zeros_like(n)
    if labelled.any():
        r = ratio / ratio.mean().clamp_min(1e-12)
        target[labelled] = G.detach()[labelled].mean() * r.pow(alpha)
    gn = ((G - target).abs() * labelled.float()).sum()
    gw = torch.autograd.grad(gn, w, allow_unused=True)[0]
    gw = torch.zeros_like(w) if gw is None else gw
    surrogate = (w * gw.detach()).sum()  # gives w exactly the GradNorm gradient; contributes 0 to the value
    return (w.detach() * L).sum() + surrogate - surrogate.detach()
