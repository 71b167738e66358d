"""DANN: domain-adversarial training behind a gradient-reversal layer (see ``base``)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ...params import Interval
from ..base import POSITIVE
from ..registry import register_strategy
from .base import DomainAdaptation
from .losses import DomainDiscriminator, ganin_lambda, grad_reverse


@register_strategy
class DANN(DomainAdaptation):
    """Domain-adversarial training: a critic learns to tell source from target embeddings while the
    gradient-reversal layer trains the features to fool it, so the classifier's features become domain-invariant.

    Paper: Ganin & Lempitsky, "Unsupervised Domain Adaptation by Backpropagation", ICML 2015; Ganin et al.,
    JMLR 2016. Inputs: labelled source ``train``, unlabelled ``target``; batches (B, C, H, W) of each.
    Defaults from the paper: critic 1024-1024, reversal factor ``2 / (1 + exp(-10 p)) - 1`` over progress p.

    Example:
        >>> DANN(backbone="file:runs/pretrain", epochs=10).fit(source, target=target).evaluate(target_test)
    """

    name = "dann"

    _parameter_constraints = {
        "hidden_dim": [Interval(int, 1)], "gamma": [POSITIVE],
    }

    def __init__(self, *, hidden_dim: int = 1024, gamma: float = 10.0, **kwargs):
        super().__init__(**kwargs)
        self.hidden_dim, self.gamma = hidden_dim, gamma

    def build_critic(self, num_classes):
        return DomainDiscriminator(self.model_.out_features, self.hidden_dim)

    def transfer_loss(self, fs, ft, ls, lt):
        lambd = ganin_lambda(self.progress_, self.gamma)
        d = self.module_["critic"](grad_reverse(torch.cat([fs, ft]), lambd))
        labels = torch.cat([torch.ones(len(fs), device=d.device), torch.zeros(len(ft), device=d.device)])
        loss = F.binary_cross_entropy_with_logits(d.float(), labels)
        return loss, {"domain_acc": ((d > 0).float() == labels).float().mean(), "lambda": lambd}
