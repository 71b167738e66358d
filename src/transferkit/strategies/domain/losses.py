"""The alignment losses and critics of domain adaptation: gradient reversal and DANN's schedule (Ganin et al.), the
domain discriminator, multi-kernel MMD (DAN, Long et al. 2015), CORAL (Sun & Saenko 2016) and CDAN's multilinear
map (Long et al. 2018)."""
from __future__ import annotations

import math

import torch
from torch import nn


class _GradientReversal(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, lambd):
        ctx.lambd = lambd
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.lambd * grad, None


def grad_reverse(x: torch.Tensor, lambd: float = 1.0) -> torch.Tensor:
    """Identity forward; multiplies the gradient by ``-lambd`` backward (Ganin & Lempitsky 2015)."""
    return _GradientReversal.apply(x, float(lambd))


def ganin_lambda(progress: float, gamma: float = 10.0) -> float:
    """DANN's adaptation-factor schedule ``2 / (1 + exp(-gamma p)) - 1`` for training progress p in [0, 1]
    (Ganin et al. 2016, gamma = 10): 0 at the start (the critic is still noise), -> 1 at the end."""
    p = min(max(float(progress), 0.0), 1.0)
    return 2.0 / (1.0 + math.exp(-gamma * p)) - 1.0


class DomainDiscriminator(nn.Module):
    """Domain critic (B, D) -> logits (B,): two hidden layers of ``hidden`` units with BatchNorm and ReLU
    (TLlib's form of Ganin et al.'s 1024-1024 critic)."""

    def __init__(self, in_features: int, hidden: int = 1024):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_features, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                                 nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                                 nn.Linear(hidden, 1))

    def forward(self, x):
        return self.net(x).squeeze(1)


def mk_mmd(fs: torch.Tensor, ft: torch.Tensor, multipliers=(0.25, 0.5, 1.0, 2.0, 4.0)) -> torch.Tensor:
    """Multi-kernel MMD^2 (biased estimate) between (Bs, D) and (Bt, D) with Gaussian kernels whose
    bandwidths are ``multipliers x`` the mean pairwise squared distance of the joint batch (Long et al. 2015)."""
    x = torch.cat([fs, ft]).float()
    d2 = torch.cdist(x, x).pow(2)
    n = x.shape[0]
    base = d2.detach().sum() / max(1, n * n - n)
    k = sum(torch.exp(-d2 / (base * m + 1e-8)) for m in multipliers)
    ns = fs.shape[0]
    return k[:ns, :ns].mean() + k[ns:, ns:].mean() - 2 * k[:ns, ns:].mean()


def coral_loss(fs: torch.Tensor, ft: torch.Tensor) -> torch.Tensor:
    """``||C_s - C_t||_F^2 / (4 d^2)`` between the feature covariances (Sun & Saenko 2016)."""
    d = fs.shape[1]

    def cov(f):
        f = f.float()
        f = f - f.mean(0, keepdim=True)
        return f.t() @ f / max(1, f.shape[0] - 1)
    return (cov(fs) - cov(ft)).pow(2).sum() / (4 * d * d)


class MultilinearMap(nn.Module):
    """CDAN's conditioning ``f (x) g``: the flattened outer product (B, D*K), or its randomised version
    ``(f R_f) * (g R_g) / sqrt(out)`` when ``D*K > max_dim`` (Long et al. 2018)."""

    def __init__(self, features: int, classes: int, max_dim: int = 4096, out_dim: int = 1024, seed: int = 0):
        super().__init__()
        self.randomized = features * classes > max_dim
        self.out_features = out_dim if self.randomized else features * classes
        if self.randomized:
            g = torch.Generator().manual_seed(seed)
            self.register_buffer("rf", torch.randn(features, out_dim, generator=g))
            self.register_buffer("rg", torch.randn(classes, out_dim, generator=g))

    def forward(self, f, g):
        if self.randomized:
            return (f @ self.rf) * (g @ self.rg) / math.sqrt(self.out_features)
        return torch.bmm(g.unsqueeze(2), f.unsqueeze(1)).flatten(1)
