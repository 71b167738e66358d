"""CDAN: conditional domain-adversarial training (see ``base``)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...params import BOOL, Interval
from ..base import POSITIVE
from ..registry import register_strategy
from .base import DomainAdaptation
from .losses import DomainDiscriminator, MultilinearMap, ganin_lambda, grad_reverse
from .validators import _entropy


@register_strategy
class CDAN(DomainAdaptation):
    """Conditional domain-adversarial training: the critic sees the multilinear map of features and class
    predictions, aligning the class-conditional distributions rather than only the marginals.

    Paper: Long et al., "Conditional Adversarial Domain Adaptation", NeurIPS 2018. Inputs: labelled source
    ``train``, unlabelled ``target``. The map (B, D*K) is randomised to ``randomized_dim`` when D*K > 4096
    (paper's choice); entropy conditioning (CDAN+E) weights each example by ``1 + exp(-H(p))``.

    Example:
        >>> CDAN(epochs=10, entropy_conditioning=True).fit(source, target=target).evaluate(target_test)
    """

    name = "cdan"

    _parameter_constraints = {
        "entropy_conditioning": [BOOL], "hidden_dim": [Interval(int, 1)], "randomized_dim": [Interval(int, 1)],
        "gamma": [POSITIVE],
    }

    def __init__(self, *, entropy_conditioning: bool = True, hidden_dim: int = 1024, randomized_dim: int = 1024,
                 gamma: float = 10.0, **kwargs):
        super().__init__(**kwargs)
        self.entropy_conditioning, self.hidden_dim = entropy_conditioning, hidden_dim
        self.randomized_dim, self.gamma = randomized_dim, gamma

    def build_critic(self, num_classes):
        mapper = MultilinearMap(self.model_.out_features, num_classes, out_dim=self.randomized_dim, seed=self.seed)
        return nn.ModuleDict({"map": mapper, "disc": DomainDiscriminator(mapper.out_features, self.hidden_dim)})

    def transfer_loss(self, fs, ft, ls, lt):
        lambd = ganin_lambda(self.progress_, self.gamma)
        f = torch.cat([fs, ft])
        g = torch.softmax(torch.cat([ls, lt]).float(), 1).detach()
        critic = self.module_["critic"]
        d = critic["disc"](grad_reverse(critic["map"](f.float(), g), lambd))
        ns = len(fs)
        labels = torch.cat([torch.ones(ns, device=d.device), torch.zeros(len(ft), device=d.device)])
        if self.entropy_conditioning:
            w = 1.0 + torch.exp(-_entropy(g))
            w = torch.cat([w[:ns] / w[:ns].sum() * ns, w[ns:] / w[ns:].sum() * len(ft)])
        else:
            w = torch.ones_like(labels)
        loss = F.binary_cross_entropy_with_logits(d.float(), labels, weight=w)
        return loss, {"domain_acc": ((d > 0).float() == labels).float().mean(), "lambda": lambd}
