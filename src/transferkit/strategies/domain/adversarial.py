"""Adversarial transfer learning: fine-tune on clean + adversarial examples (PGD/FGSM, or TRADES) and report
clean and robust accuracy under a stated threat model.

Attacks run in [0, 1] pixel space (the backbone normalises inside the model), so ``eps`` is in pixel units.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ...data import ImageDataset
from ...robustness import NORMS, pgd, project_to_ball, robust_accuracy, threat_model
from ...errors import check_choice
from ...params import BOOL, DICT, Interval, Options
from ..base import NON_NEGATIVE, POSITIVE, NeuralStrategy
from ..registry import register_strategy


@register_strategy
class AdversarialFineTune(NeuralStrategy):
    """Fine-tune a pre-trained backbone on adversarial examples generated on the fly, so the new model keeps
    its accuracy under bounded pixel perturbations; ``objective='mixed'`` trains on a clean/adversarial mix,
    ``objective='trades'`` on clean cross-entropy plus ``beta`` x KL(clean || adversarial).

    Papers: Goodfellow et al. 2015 (mixed clean/adversarial objective, alpha = 0.5); Madry et al. 2018 (PGD
    training, step 2.5 eps / steps); Zhang et al., "TRADES", ICML 2019 (beta = 6); Shafahi et al.,
    "Adversarially robust transfer learning", ICLR 2020 (``freeze_backbone=True``: a robust feature extractor
    with a retrained head keeps much of its robustness); Salman et al. 2020.

    Args (besides NeuralStrategy's):
        attack: 'pgd' or 'fgsm' (training attack). norm: 'linf' or 'l2'.
        eps: radius in [0, 1] pixel units (8/255 is the CIFAR/ImageNet L-inf standard; 0.3 for MNIST in Madry).
        steps, step_size: PGD steps (7, Madry's training attack) and step (None = 2.5 * eps / steps).
        adv_ratio: fraction of each batch replaced by its adversarial version ('mixed'): 1.0 = Madry,
            0.5 = Goodfellow's equal mix.
        objective: 'mixed' or 'trades'. beta: TRADES trade-off (6.0 in Zhang et al. 2019).
        freeze_backbone: train only the head (BatchNorm kept in eval mode), else the whole network.
        eval_threat: the threat model of ``evaluate`` (default: L-inf, ``eps``, PGD-10, 1 restart).

    Inputs: labelled ``train``. Batches (B, C, H, W) in [0, 1] -> logits (B, n_classes).

    Example:
        >>> adv = AdversarialFineTune(backbone="file:runs/pretrain", eps=8/255, objective="trades").fit(train)
        >>> adv.evaluate(test)   # accuracy, robust_accuracy, threat_model
    """

    name = "adversarial-finetune"
    family = "domain-shift"
    data_roles = ("train",)

    _parameter_constraints = {
        "attack": [Options("pgd", "fgsm")], "norm": [Options(*NORMS)], "eps": [NON_NEGATIVE], "steps": [Interval(int, 1)],
        "step_size": [None, POSITIVE], "adv_ratio": [Interval(float, 0, 1)], "objective": [Options("mixed", "trades")],
        "beta": [NON_NEGATIVE], "freeze_backbone": [BOOL], "eval_threat": [None, DICT],
    }

    def __init__(self, *, attack: str = "pgd", norm: str = "linf", eps: float = 8 / 255, steps: int = 7,
                 step_size: float | None = None, adv_ratio: float = 1.0, objective: str = "mixed", beta: float = 6.0,
                 freeze_backbone: bool = False, eval_threat: dict | None = None, **kwargs):
        super().__init__(**kwargs)
        self.attack, self.norm, self.eps, self.steps, self.step_size = attack, norm, eps, steps, step_size
        self.adv_ratio, self.objective, self.beta = adv_ratio, objective, beta
        self.freeze_backbone, self.eval_threat = freeze_backbone, eval_threat

    def _check_combinations(self) -> None:
        if self.attack == "fgsm":
            check_choice(type(self).__name__, "norm (with attack='fgsm')", self.norm, ("linf",))

    def setup(self, train: ImageDataset, **roles) -> None:
        if self.freeze_backbone:
            for p in self.model_.backbone.parameters():
                p.requires_grad_(False)
        self.n_trainable_params_ = sum(p.numel() for p in self.model_.parameters() if p.requires_grad)

    def _train_attack(self, x, y, loss_fn=None):
        if self.attack == "fgsm":
            kw = dict(eps=self.eps, norm="linf", steps=1, step_size=self.eps, random_start=False)
        else:
            kw = dict(eps=self.eps, norm=self.norm, steps=self.steps, step_size=self.step_size, random_start=True)
        x_adv = pgd(self.model_, x, y, loss_fn=loss_fn, **kw)
        if self.freeze_backbone:  # the attack restores train mode on the whole model
            self.model_.backbone.eval()
        return x_adv

    def training_step(self, batch) -> dict:
        x, y = batch
        if self.freeze_backbone:
            self.model_.backbone.eval()
        if self.objective == "trades":
            with torch.no_grad():
                was = self.model_.training
                self.model_.eval()
                p_clean = torch.softmax(self.model_(x).float(), 1)
                self.model_.train(was)
                if self.freeze_backbone:
                    self.model_.backbone.eval()
            kl = lambda logits, p: F.kl_div(F.log_softmax(logits.float(), 1), p, reduction="none").sum(1)
            x0 = (x + 0.001 * torch.randn_like(x)).clamp(0, 1)  # Zhang et al.'s start
            x_adv = self._train_attack(x0, p_clean, loss_fn=kl)
            x_adv = project_to_ball(x, x_adv, self.norm if self.attack == "pgd" else "linf", self.eps)
            logits = self.model_(torch.cat([x, x_adv]))
            lc, la = logits[:len(x)], logits[len(x):]
            natural = self.loss(lc, y)
            robust = F.kl_div(F.log_softmax(la.float(), 1), F.softmax(lc.float(), 1), reduction="batchmean")
            return {"loss": natural + self.beta * robust, "natural_loss": natural, "robust_loss": robust,
                    "acc": (lc.argmax(1) == y).float().mean(), "adv_acc": (la.argmax(1) == y).float().mean()}
        n_adv = int(round(self.adv_ratio * len(x)))
        if n_adv:
            x_adv = self._train_attack(x[:n_adv], y[:n_adv])
            x = torch.cat([x_adv, x[n_adv:]])
        logits = self.model_(x)
        out = {"loss": self.loss(logits, y), "acc": (logits.argmax(1) == y).float().mean()}
        if n_adv:
            out["adv_acc"] = (logits[:n_adv].argmax(1) == y[:n_adv]).float().mean()
        return out

    # -- evaluation -----------------------------------------------------------------------------------------
    def threat(self) -> dict:
        """The evaluation threat model (``eval_threat``, else L-inf at ``eps`` with PGD-10 and one restart)."""
        t = dict(self.eval_threat or {})
        t.setdefault("norm", self.norm)
        t.setdefault("eps", self.eps)
        t.setdefault("steps", 10)
        return threat_model(**{k: v for k, v in t.items() if k not in ("attack", "space")})

    def evaluate(self, data: ImageDataset, *, threat: dict | None = None, max_samples: int | None = None) -> dict:
        """Clean metrics plus ``robust_accuracy`` and its ``threat_model`` on labelled ``data``."""
        out = super().evaluate(data)
        out.update(robustness(self, data, threat or self.threat(), max_samples=max_samples))
        return out


def robustness(strategy: NeuralStrategy, data: ImageDataset, threat: dict | None = None, *,
               max_samples: int | None = None, batch_size: int = 256, seed: int = 0) -> dict:
    """Clean and PGD robust accuracy of any fitted network strategy (FineTune, AdversarialFineTune, ...) on
    labelled ``data`` under ``threat`` (a :func:`~transferkit.robustness.threat_model` dict)."""
    strategy.check_fitted()
    labelled = (data.labels >= 0).nonzero()[0]
    data = data.subset(labelled) if len(labelled) < len(data) else data
    strategy.check_classes(data)
    loader = strategy.loader(data, train=False, batch_size=batch_size)
    model = _LogitsModule(strategy)
    res = robust_accuracy(model, loader, threat, max_samples=max_samples, seed=seed)
    return {"clean_accuracy": res["clean_accuracy"], "robust_accuracy": res["robust_accuracy"],
            "robust_n": res["n"], "threat_model": res["threat_model"]}


def compare_robustness(strategies: dict, data: ImageDataset, threat: dict | None = None, **kwargs) -> dict:
    """``{name: robustness(...)}`` for several fitted strategies under one threat model (side by side)."""
    threat = threat_model(**{k: v for k, v in (threat or {}).items() if k not in ("attack", "space")})
    return {"threat_model": threat,
            "rows": {name: robustness(s, data, threat, **kwargs) for name, s in strategies.items()}}


class _LogitsModule(torch.nn.Module):
    """A strategy's ``logits`` as a module (so attacks see the same forward as ``predict``)."""

    def __init__(self, strategy):
        super().__init__()
        self.net = strategy.model_
        self._strategy = [strategy]

    def forward(self, x):
        return self._strategy[0].logits(x)


__all__ = ["AdversarialFineTune", "robustness", "compare_robustness"]
