"""Elastic Weight Consolidation (Kirkpatrick et al. 2017) over a task sequence."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ...data import ImageDataset
from ...params import Interval
from ..base import NON_NEGATIVE
from ..registry import register_strategy
from .sequential import SequentialFineTune


@register_strategy
class EWC(SequentialFineTune):
    """Sequential fine-tuning with Elastic Weight Consolidation: a quadratic pull toward earlier tasks' weights.

    Kirkpatrick et al., "Overcoming catastrophic forgetting in neural networks", PNAS 2017. After task k the
    diagonal Fisher information F_k of the shared backbone is estimated on ``fisher_samples`` training images
    (per-sample squared gradients of the log-likelihood of the true label: the empirical Fisher, as in
    Avalanche) and the weights theta*_k are stored; later tasks add
    ``ewc_lambda / 2 * sum_k sum_i F_k,i (theta_i - theta*_k,i)^2`` to the loss.

    Args:
        ewc_lambda: penalty strength. There is no universal value (the paper tunes it per benchmark; Avalanche
            examples range from 0.4 to 10^4); the default 100 suits the builtins on Fashion-MNIST splits.
        fisher_samples: images used to estimate each task's Fisher (default 256).
        **kwargs: the shared training parameters.

    Example:
        >>> EWC(backbone="builtin:small-cnn", ewc_lambda=100, epochs=2).fit(tasks, eval_tasks=tests).continual_metrics_
    """

    name = "ewc"

    _parameter_constraints = {
        "ewc_lambda": [NON_NEGATIVE], "fisher_samples": [Interval(int, 1)],
    }

    def __init__(self, *, ewc_lambda: float = 100.0, fisher_samples: int = 256, **kwargs):
        super().__init__(**kwargs)
        self.ewc_lambda, self.fisher_samples = ewc_lambda, fisher_samples

    def _shared(self):
        return [(n, p) for n, p in self.model_.backbone.named_parameters()]

    def _end_task(self, k, data, restoring: bool = False):
        if not hasattr(self, "fishers_") or k == 0:
            self.fishers_, self.anchors_ = [], []
        shared = self._shared()
        if restoring:  # tensors are filled by load_state_dict below
            self.fishers_.append({n: torch.zeros_like(p) for n, p in shared})
            self.anchors_.append({n: torch.zeros_like(p) for n, p in shared})
            self._register_ewc_buffers(k)
            return
        self.fishers_.append(self._fisher(data, k))
        self.anchors_.append({n: p.detach().clone() for n, p in shared})
        self._register_ewc_buffers(k)

    def _register_ewc_buffers(self, k):
        """Keep F_k and theta*_k as buffers of the model so save/load carries them."""
        holder = nn.Module()
        for i, (n, _) in enumerate(self._shared()):
            holder.register_buffer(f"f{i}", self.fishers_[k][n])
            holder.register_buffer(f"a{i}", self.anchors_[k][n])
        if not hasattr(self.model_, "ewc"):
            self.model_.ewc = nn.ModuleList()
        self.model_.ewc.append(holder)
        names = [n for n, _ in self._shared()]
        self.fishers_[k] = {n: getattr(holder, f"f{i}") for i, n in enumerate(names)}
        self.anchors_[k] = {n: getattr(holder, f"a{i}") for i, n in enumerate(names)}

    def _fisher(self, data: ImageDataset, k: int) -> dict:
        model = self.model_.eval()
        device = next(model.parameters()).device
        rng = np.random.default_rng(self.seed + k)
        idx = rng.choice(len(data), size=min(self.fisher_samples, len(data)), replace=False)
        shared = self._shared()
        fisher = {n: torch.zeros_like(p) for n, p in shared}
        sub = data.subset(np.sort(idx))
        for x, y in self.loader(sub, train=False, batch_size=64):
            x, y = x.to(device), y.to(device)
            for i in range(len(y)):  # per-sample gradients: the Fisher is a mean of squared per-sample gradients
                model.zero_grad(set_to_none=True)
                F.cross_entropy(model(x[i:i + 1], k), y[i:i + 1]).backward()
                for n, p in shared:
                    if p.grad is not None:
                        fisher[n] += p.grad.detach() ** 2
        model.zero_grad(set_to_none=True)
        return {n: f / len(idx) for n, f in fisher.items()}

    def penalty(self):
        if not getattr(self, "fishers_", None) or self.ewc_lambda == 0:
            return None
        params = dict(self._shared())
        total = 0.0
        for fisher, anchor in zip(self.fishers_, self.anchors_):
            for n, p in params.items():
                total = total + (fisher[n] * (p - anchor[n]) ** 2).sum()
        return 0.5 * self.ewc_lambda * total
