"""Fine-tuning: update the whole pre-trained network with a new head and small, layer-wise learning rates.

The default recipe on a pre-trained backbone is LP-FT with frozen BatchNorm, chosen on evidence among today's
default, fastai's ``fine_tune``, LP-FT and label smoothing (BENCHMARKS.md, "the default recipe"; issue 23):
the head alone on the frozen body for half the epochs, then every layer, the body at a tenth of the head's
rate, every BatchNorm layer frozen (running statistics and affine parameters), AdamW 1e-3 on a cosine
schedule, 6 epochs of batch 32. From a random initialisation none of that applies: every layer trains at
``lr`` from the start with BatchNorm in training mode.

Options from the literature:

* LP-FT (``lp_epochs``): train the head on the frozen backbone first, then everything
  (Kumar et al., "Fine-Tuning can Distort Pretrained Features...", ICLR 2022);
* a lower rate for the pre-trained body (``backbone_lr_mult``) and discriminative (layer-wise) rates over its
  layer groups, stem -> top, by a decay factor (``lr_decay``; Howard & Ruder 2018, timm's ``layer_decay``) or
  explicit multipliers (``group_lr_mults``), applied as real optimizer parameter groups;
* linear warmup (``warmup_epochs``, from the shared parameters; Goyal et al. 2017);
* L2-SP (``l2sp_alpha``, ``l2sp_beta``): an L2 penalty toward the *starting* (pre-trained) weights instead of
  toward zero (Li, Grandvalet & Davoine, "Explicit Inductive Bias for Transfer Learning", ICML 2018);
* label smoothing (``label_smoothing``; Szegedy et al. 2016) and MixUp / CutMix (``mixup_alpha``,
  ``cutmix_alpha``; Zhang et al. 2018, Yun et al. 2019) through torchvision's ``v2.MixUp`` / ``v2.CutMix``;
* an explicit BatchNorm policy (``bn_policy``; shared with :class:`FreezeTune`).
"""
from __future__ import annotations

import torch
from torch import nn

from ..base import NON_NEGATIVE, NeuralStrategy
from ..registry import register_strategy
from .layers import ReuseClassifier
from .recipe import PretrainedRecipe


@register_strategy
class FineTune(PretrainedRecipe, NeuralStrategy):
    """Fine-tune every layer of a pre-trained backbone with a new linear head and layer-wise learning rates.

    The head trains at ``lr * head_lr_mult``; backbone group ``i`` of ``n`` (stem = 0, top = n-1) at
    ``lr * backbone_lr_mult * lr_decay ** (n - i)`` or ``lr * backbone_lr_mult * group_lr_mults[i]``.
    References: Yosinski et al., NeurIPS 2014 (transferability); Howard & Ruder, ULMFiT, ACL 2018 (discriminative
    rates, decay 1/2.6 per layer); Kumar et al., ICLR 2022 (LP-FT); Li et al., ICML 2018 (L2-SP).

    Inputs: labelled ``train`` (optional ``val``). Images (B, C, H, W) in [0, 1] -> logits (B, n_classes).

    Args:
        lp_epochs, backbone_lr_mult, lr_decay, group_lr_mults, head_lr_mult, bn_policy: the recipe on a
            pre-trained backbone and the layer-wise rates (:class:`recipe.PretrainedRecipe`).
        l2sp_alpha: weight of ``alpha/2 * ||w - w0||^2`` over the backbone, ``w0`` the starting weights.
            0 disables it; Li et al. 2018 select it from {1e-3, 1e-2, 0.1, 1} (0.01 a common choice). When on,
            the optimizer's weight decay toward zero is switched off for the backbone.
        l2sp_beta: weight of ``beta/2 * ||w_head||^2`` on the new head when L2-SP is on (Li et al.: 0.01).
        mixup_alpha, cutmix_alpha: Beta(alpha, alpha) mixing (0 = off); with both on, one of the two is drawn
            per batch (timm's switch probability 0.5). Common values: mixup 0.2-0.8, cutmix 1.0.
        epochs, batch_size: 6 and 32 by default (the recipe's); ``**kwargs``: the shared training parameters of
            :class:`NeuralStrategy` (``lr`` 1e-3, ``warmup_epochs``, ``label_smoothing``, ``scheduler``...).

    After ``fit``: ``model_``, ``classes_``, ``history_`` (per epoch, with ``trainable_groups``),
    ``lr_groups_`` (name -> configured learning rate), ``lp_epochs_``, ``backbone_lr_mult_`` and ``bn_policy_``
    (the values that ran), ``n_trainable_params_``, ``fit_time_``.

    Example:
        >>> ft = FineTune(backbone="file:runs/pretrain", epochs=5, lr=1e-3, lr_decay=0.5, lp_epochs=1,
        ...               l2sp_alpha=0.01, warmup_epochs=0.5)
        >>> ft.fit(train).evaluate(test)["accuracy"]
    """

    name = "finetune"
    splittable_batches = True
    family = "reuse-weights"

    _parameter_constraints = {
        "l2sp_alpha": [NON_NEGATIVE], "l2sp_beta": [NON_NEGATIVE], "mixup_alpha": [NON_NEGATIVE],
        "cutmix_alpha": [NON_NEGATIVE],
    }

    def __init__(self, *, l2sp_alpha: float = 0.0, l2sp_beta: float = 0.01, mixup_alpha: float = 0.0,
                 cutmix_alpha: float = 0.0, epochs: int = 6, batch_size: int = 32, **kwargs):
        super().__init__(epochs=epochs, batch_size=batch_size, **kwargs)
        self.l2sp_alpha, self.l2sp_beta = l2sp_alpha, l2sp_beta
        self.mixup_alpha, self.cutmix_alpha = mixup_alpha, cutmix_alpha

    def build_model(self, backbone, num_classes: int) -> nn.Module:
        return ReuseClassifier(backbone, num_classes)

    def param_groups(self) -> list[dict]:
        """The recipe's groups; with L2-SP on, no weight decay toward zero on the body (nor on the head when
        ``l2sp_beta`` penalises it instead)."""
        out = super().param_groups()
        if self.l2sp_alpha > 0:
            for g in out:
                if g["name"] != "head" or self.l2sp_beta > 0:
                    g["weight_decay"] = 0.0
        return out

    def setup(self, train, **roles) -> None:
        super().setup(train, **roles)
        self._l2sp_ref = None
        if self.l2sp_alpha > 0:
            self._l2sp_ref = [(p, p.detach().clone()) for p in self.model_.backbone.parameters()]

    # -- the step -----------------------------------------------------------------------------------
    def l2sp_penalty(self) -> torch.Tensor:
        """``sum ||w - w0||^2`` over the backbone (0 at the start of training); unweighted."""
        if not self._l2sp_ref:
            return torch.zeros(())
        terms = []
        for i, (p, p0) in enumerate(self._l2sp_ref):
            if p0.device != p.device:
                p0 = p0.to(p.device)
                self._l2sp_ref[i] = (p, p0)
            terms.append((p.float() - p0.float()).pow(2).sum())
        return torch.stack(terms).sum()

    def _mix(self, x, y):
        from torchvision.transforms import v2

        n = len(self.classes_)
        ops = ([v2.MixUp(alpha=self.mixup_alpha, num_classes=n)] if self.mixup_alpha > 0 else []) + \
              ([v2.CutMix(alpha=self.cutmix_alpha, num_classes=n)] if self.cutmix_alpha > 0 else [])
        op = ops[0] if len(ops) == 1 else v2.RandomChoice(ops)
        return op(x, y)

    def training_step(self, batch) -> dict:
        x, y = batch
        target = y
        if self.mixup_alpha > 0 or self.cutmix_alpha > 0:
            x, target = self._mix(x, y)  # soft targets (B, n_classes)
        logits = self.model_(x)
        loss = nn.functional.cross_entropy(logits, target, label_smoothing=self.label_smoothing)
        out = {"ce": loss.detach(), "acc": (logits.argmax(1) == y).float().mean()}
        if self._l2sp_ref is not None:
            drift = self.l2sp_penalty()
            head = sum(p.float().pow(2).sum() for n, p in self.model_.head.named_parameters() if n.endswith("weight"))
            loss = loss + 0.5 * self.l2sp_alpha * drift + 0.5 * self.l2sp_beta * head
            out["l2sp"] = drift.detach()
        out["loss"] = loss
        return out
