"""Adversarial attacks in [0, 1] pixel space: FGSM, PGD (L-inf and L2) and a robust-accuracy evaluator.

Backbones normalise *inside* the model, so every attack here perturbs plain [0, 1] images and epsilon is
stated in pixel units (8/255 means eight grey levels). Perturbed images always stay in [0, 1] and within
the epsilon ball around the clean images.

References: Goodfellow et al., "Explaining and Harnessing Adversarial Examples", ICLR 2015 (FGSM);
Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks", ICLR 2018 (PGD with random
start; step size 2.5 * eps / steps); Croce & Hein 2020 (report the threat model with every robust number).

Example:
    >>> threat = threat_model(norm="linf", eps=8 / 255, steps=10, restarts=1)
    >>> x_adv = pgd(model, x, y, **attack_kwargs(threat))            # x, x_adv: (B, C, H, W) in [0, 1]
    >>> robust_accuracy(model, loader, threat)["robust_accuracy"]
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from .errors import TransferkitError, check_choice, check_range

NORMS = ("linf", "l2")


def threat_model(*, norm: str = "linf", eps: float = 8 / 255, steps: int = 10, step_size: float | None = None,
                 restarts: int = 1, random_start: bool = True) -> dict:
    """A validated threat-model record (stored with every robust-accuracy figure).

    Defaults: L-inf, eps 8/255, PGD-10 with one restart and random start, step size 2.5 * eps / steps
    (Madry et al. 2018). ``steps=1`` with ``random_start=False`` and ``step_size=eps`` is FGSM.
    """
    check_choice("threat_model", "norm", norm, NORMS)
    check_range("threat_model", "eps", eps, 0)
    check_range("threat_model", "steps", steps, 1)
    check_range("threat_model", "restarts", restarts, 1)
    if step_size is not None:
        check_range("threat_model", "step_size", step_size, 0, low_open=True)
    return {"attack": "pgd", "norm": norm, "eps": float(eps), "steps": int(steps),
            "step_size": float(step_size if step_size is not None else default_step_size(eps, steps)),
            "restarts": int(restarts), "random_start": bool(random_start), "space": "[0,1] pixels"}


def default_step_size(eps: float, steps: int) -> float:
    """2.5 * eps / steps (Madry et al. 2018), so the iterate can cross the ball and back."""
    return 2.5 * float(eps) / max(1, int(steps))


def attack_kwargs(threat: dict) -> dict:
    """The keyword arguments of :func:`pgd` in a threat-model dict."""
    return {k: threat[k] for k in ("norm", "eps", "steps", "step_size", "restarts", "random_start")}


@contextlib.contextmanager
def _attack_mode(model: nn.Module):
    """eval() (BatchNorm uses running statistics) and parameters without grad (no weight gradients are
    computed during the attack: the main saving over a naive loop); both restored afterwards."""
    was_training = model.training
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        with torch.enable_grad():
            yield
    finally:
        for p, f in flags:
            p.requires_grad_(f)
        model.train(was_training)


def _project(delta: torch.Tensor, norm: str, eps: float) -> torch.Tensor:
    if norm == "linf":
        return delta.clamp_(-eps, eps)
    n = delta.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *[1] * (delta.dim() - 1))
    return delta.mul_(torch.clamp(eps / n, max=1.0))


def _random_start(x: torch.Tensor, norm: str, eps: float, generator=None) -> torch.Tensor:
    if norm == "linf":
        return (torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) * 2 - 1) * eps
    # uniform in the L2 ball: direction ~ N(0, I), radius ~ eps * U^(1/d)
    d = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    d = d / d.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *[1] * (x.dim() - 1))
    dim = x[0].numel()
    r = torch.rand(x.shape[0], generator=generator, device=x.device, dtype=x.dtype).pow(1.0 / dim) * eps
    return d * r.view(-1, *[1] * (x.dim() - 1))


def _check_pixels(x: torch.Tensor) -> None:
    if x.numel() and (float(x.min()) < -1e-6 or float(x.max()) > 1 + 1e-6):
        raise TransferkitError(
            f"Attacks work on [0, 1] pixel images (normalisation happens inside the backbone); got values in "
            f"[{float(x.min()):.3g}, {float(x.max()):.3g}].")


def pgd(model: nn.Module, x: torch.Tensor, y, *, eps: float = 8 / 255, norm: str = "linf", steps: int = 10,
        step_size: float | None = None, random_start: bool = True, restarts: int = 1, loss_fn=None,
        generator: torch.Generator | None = None) -> torch.Tensor:
    """Projected gradient descent (Madry et al. 2018): ``steps`` ascent steps on ``loss_fn`` within the
    ``norm`` ball of radius ``eps`` around ``x``, clipped to [0, 1].

    Args:
        model: maps (B, C, H, W) in [0, 1] to logits (B, K) (a transferkit model normalises inside).
        x: clean images (B, C, H, W) in [0, 1]. y: labels (B,) (or whatever ``loss_fn`` takes).
        eps: radius in pixel units. norm: 'linf' or 'l2'.
        steps: ascent steps (10 by default; PGD-7 is Madry's CIFAR training attack).
        step_size: default 2.5 * eps / steps. random_start: start uniformly inside the ball.
        restarts: independent random starts; per example the first one that fools the model (else the
            last) is kept.
        loss_fn: ``loss_fn(logits, y) -> per-example losses (B,)`` to maximise; default cross-entropy.

    Returns the adversarial images (B, C, H, W), detached, with ``||x_adv - x|| <= eps`` and values in [0, 1].
    The model's train/eval mode and ``requires_grad`` flags are restored afterwards.
    """
    check_choice("pgd", "norm", norm, NORMS)
    check_range("pgd", "eps", eps, 0)
    check_range("pgd", "steps", steps, 1)
    check_range("pgd", "restarts", restarts, 1)
    _check_pixels(x)
    x = x.detach()
    if eps == 0:
        return x.clone()
    alpha = float(step_size) if step_size is not None else default_step_size(eps, steps)
    loss_fn = loss_fn or (lambda logits, t: F.cross_entropy(logits, t, reduction="none"))
    best, fooled = None, None
    with _attack_mode(model):
        for _ in range(restarts):
            delta = _random_start(x, norm, eps, generator) if random_start else torch.zeros_like(x)
            delta = (x + delta).clamp_(0, 1) - x
            for _ in range(steps):
                delta.requires_grad_(True)
                loss = loss_fn(model(x + delta), y)
                (grad,) = torch.autograd.grad(loss.sum(), delta)
                with torch.no_grad():
                    if norm == "linf":
                        delta = delta.detach() + alpha * grad.sign()
                    else:
                        g = grad / grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *[1] * (x.dim() - 1))
                        delta = delta.detach() + alpha * g
                    delta = _project(delta, norm, eps)
                    delta = (x + delta).clamp_(0, 1) - x
            x_adv = (x + delta).detach()
            if restarts == 1:
                return project_to_ball(x, x_adv, norm, eps)
            with torch.no_grad():
                now = _misclassified(model(x_adv), y)
            if best is None:
                best, fooled = x_adv.clone(), now.clone()
            else:
                take = now & ~fooled
                best[take] = x_adv[take]
                fooled |= now
    return project_to_ball(x, best, norm, eps)


def _misclassified(logits: torch.Tensor, y) -> torch.Tensor:
    if isinstance(y, torch.Tensor) and y.dtype == torch.long and y.dim() == 1 and logits.dim() == 2:
        return logits.argmax(1) != y
    return torch.zeros(logits.shape[0], dtype=torch.bool, device=logits.device)


def project_to_ball(x, x_adv, norm, eps):
    """``x_adv`` projected onto the ``norm`` ball of radius ``eps`` around ``x`` and clipped to [0, 1]."""
    delta = _project((x_adv - x).detach(), norm, eps)
    return (x + delta).clamp_(0, 1).detach()


def fgsm(model: nn.Module, x: torch.Tensor, y, *, eps: float = 8 / 255, loss_fn=None) -> torch.Tensor:
    """Fast gradient sign method (Goodfellow et al. 2015): ``x + eps * sign(grad)``, clipped to [0, 1].

    The same as one L-inf PGD step of size ``eps`` without random start.
    """
    return pgd(model, x, y, eps=eps, norm="linf", steps=1, step_size=eps, random_start=False, loss_fn=loss_fn)


def robust_accuracy(model: nn.Module, data, threat: dict | None = None, *, device=None, batch_size: int = 256,
                    max_samples: int | None = None, seed: int = 0, progress: bool = False) -> dict:
    """Clean and robust accuracy of ``model`` under a PGD threat model, side by side.

    Args:
        model: (B, C, H, W) in [0, 1] -> logits. data: an iterable of ``(x, y)`` batches (a DataLoader).
        threat: a :func:`threat_model` dict (default: L-inf 8/255, PGD-10, 1 restart).
        max_samples: stop after this many images (robust evaluation is ``steps * restarts`` times the cost).

    Returns ``{"clean_accuracy", "robust_accuracy", "n", "threat_model"}``; an example counts as robust
    when it is classified correctly on every restart's adversarial image.
    """
    from .utils import progress_bar

    threat = threat_model(**{k: v for k, v in (threat or {}).items() if k not in ("attack", "space")})
    device = torch.device(device) if device else next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    clean = robust = n = 0
    for x, y in progress_bar(data, desc="PGD evaluation", enabled=progress, leave=False, unit="batch"):
        if max_samples is not None and n >= max_samples:
            break
        if max_samples is not None:
            x, y = x[:max_samples - n], y[:max_samples - n]
        x, y = x.to(device), y.to(device)
        with torch.no_grad():
            was = model.training
            model.eval()
            ok = model(x).argmax(1) == y
            model.train(was)
        x_adv = pgd(model, x, y, generator=gen, **attack_kwargs(threat))
        with torch.no_grad():
            model.eval()
            ok_adv = model(x_adv).argmax(1) == y
            model.train(was)
        clean += int(ok.sum())
        robust += int((ok & ok_adv).sum())
        n += len(y)
    return {"clean_accuracy": clean / max(1, n), "robust_accuracy": robust / max(1, n), "n": n,
            "threat_model": threat}


__all__ = ["threat_model", "default_step_size", "attack_kwargs", "pgd", "fgsm", "robust_accuracy", "project_to_ball",
           "NORMS"]
