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

from collections.abc import Sequence

import torch
from torch import nn

from ...params import DICT, STR, Interval, ListOf, Options
from ..base import NON_NEGATIVE, POSITIVE, NeuralStrategy
from ..registry import register_strategy
from .layers import BN_POLICIES, ReuseClassifier, backbone_groups, explicit_multipliers, norm_layers

# The recipe on pre-trained weights (module docstring); from a random initialisation: lp 0, mult 1, 'eval'.
PRETRAINED_BACKBONE_LR_MULT = 0.1
PRETRAINED_BN_POLICY = "frozen"
# The behaviour before issue 23's recipe: every layer at the rates given from the first step, BatchNorm training.
# Pre-training from scratch uses it, and so do the benchmarks whose recorded figures were measured with it.
PLAIN_RECIPE = {"lp_epochs": 0, "backbone_lr_mult": 1.0, "bn_policy": "eval"}


@register_strategy
class FineTune(NeuralStrategy):
    """Fine-tune every layer of a pre-trained backbone with a new linear head and layer-wise learning rates.

    The head trains at ``lr * head_lr_mult``; backbone group ``i`` of ``n`` (stem = 0, top = n-1) at
    ``lr * backbone_lr_mult * lr_decay ** (n - i)`` or ``lr * backbone_lr_mult * group_lr_mults[i]``.
    References: Yosinski et al., NeurIPS 2014 (transferability); Howard & Ruder, ULMFiT, ACL 2018 (discriminative
    rates, decay 1/2.6 per layer); Kumar et al., ICLR 2022 (LP-FT); Li et al., ICML 2018 (L2-SP).

    Inputs: labelled ``train`` (optional ``val``). Images (B, C, H, W) in [0, 1] -> logits (B, n_classes).

    Args:
        lp_epochs: LP-FT: train only the head for this many epochs (backbone frozen, BatchNorm in eval mode),
            then the whole network. None (default): half the epochs (rounded down) on a pre-trained backbone,
            0 from a random initialisation.
        backbone_lr_mult: the body's rate relative to ``lr``. None (default): 0.1 on a pre-trained backbone
            (LP-FT fine-tunes the body with a small rate), 1.0 from a random initialisation.
        lr_decay: layer-wise decay factor in (0, 1] on top of ``backbone_lr_mult``; 1.0 (default) gives every
            group the same rate. ULMFiT uses 1/2.6 ~= 0.38 per group; timm's ViT recipes use 0.65-0.75.
        group_lr_mults: explicit multipliers instead of ``lr_decay``: a list stem -> top (one per backbone
            group, see ``create_backbone(spec).group_names``) or a dict ``{group_name: mult}`` (others 1.0).
        head_lr_mult: multiplier of the new head's rate (default 1.0).
        l2sp_alpha: weight of ``alpha/2 * ||w - w0||^2`` over the backbone, ``w0`` the starting weights.
            0 disables it; Li et al. 2018 select it from {1e-3, 1e-2, 0.1, 1} (0.01 a common choice). When on,
            the optimizer's weight decay toward zero is switched off for the backbone.
        l2sp_beta: weight of ``beta/2 * ||w_head||^2`` on the new head when L2-SP is on (Li et al.: 0.01).
        mixup_alpha, cutmix_alpha: Beta(alpha, alpha) mixing (0 = off); with both on, one of the two is drawn
            per batch (timm's switch probability 0.5). Common values: mixup 0.2-0.8, cutmix 1.0.
        bn_policy: 'auto' (default): 'frozen' on a pre-trained backbone, 'eval' from a random initialisation;
            'frozen' (every backbone BatchNorm in eval mode with its affine parameters fixed, even when its
            group trains: small batches, and the micro-batches of the training memory budget, cannot estimate
            better statistics than the pre-trained ones), 'eval' (BatchNorm of *frozen* layers keeps its running
            statistics, so frozen layers stay exactly as loaded) or 'train' (statistics keep updating).
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
        "lr_decay": [Interval(float, 0, 1, closed="right")], "group_lr_mults": [None, STR, ListOf(NON_NEGATIVE), DICT],
        "head_lr_mult": [POSITIVE], "backbone_lr_mult": [None, NON_NEGATIVE], "lp_epochs": [None, Interval(int, 0, "epochs")],
        "l2sp_alpha": [NON_NEGATIVE], "l2sp_beta": [NON_NEGATIVE], "mixup_alpha": [NON_NEGATIVE],
        "cutmix_alpha": [NON_NEGATIVE], "bn_policy": [Options(*BN_POLICIES)],
    }

    def __init__(self, *, lr_decay: float = 1.0, group_lr_mults=None, head_lr_mult: float = 1.0,
                 backbone_lr_mult: float | None = None, lp_epochs: int | None = None, l2sp_alpha: float = 0.0,
                 l2sp_beta: float = 0.01, mixup_alpha: float = 0.0, cutmix_alpha: float = 0.0, bn_policy: str = "auto",
                 epochs: int = 6, batch_size: int = 32, **kwargs):
        super().__init__(epochs=epochs, batch_size=batch_size, **kwargs)
        self.lr_decay, self.group_lr_mults, self.head_lr_mult = lr_decay, group_lr_mults, head_lr_mult
        self.backbone_lr_mult = backbone_lr_mult
        self.lp_epochs, self.l2sp_alpha, self.l2sp_beta = lp_epochs, l2sp_alpha, l2sp_beta
        self.mixup_alpha, self.cutmix_alpha, self.bn_policy = mixup_alpha, cutmix_alpha, bn_policy

    # -- parameters ------------------------------------------------------------------------------

    def build_model(self, backbone, num_classes: int) -> nn.Module:
        return ReuseClassifier(backbone, num_classes)

    def backbone_groups(self) -> list[tuple[str, list[nn.Parameter]]]:
        """(name, parameters) per backbone layer group, stem -> top (:func:`layers.backbone_groups`)."""
        return backbone_groups(self.model_.backbone)

    def group_multipliers(self, names: Sequence[str]) -> list[float]:
        """Learning-rate multiplier per backbone group (stem -> top): the body's multiplier times ``lr_decay``'s
        powers, or times ``group_lr_mults`` (:func:`layers.explicit_multipliers`)."""
        if not hasattr(self, "backbone_lr_mult_"):
            self.resolve_recipe()
        body, n = self.backbone_lr_mult_, len(names)
        if self.group_lr_mults is None:
            return [body * float(self.lr_decay) ** (n - i) for i in range(n)]
        return [body * v for v in explicit_multipliers(self.group_lr_mults, names, type(self).__name__)]

    def param_groups(self) -> list[dict]:
        """One optimizer group per backbone layer group (``lr * multiplier``), then the head (and any extra modules)."""
        groups = self.backbone_groups()
        mults = self.group_multipliers([n for n, _ in groups])
        l2sp = self.l2sp_alpha > 0
        out = []
        for (name, params), mult in zip(groups, mults):
            g = {"params": params, "lr": self.lr * mult, "name": f"backbone.{name}", "lr_mult": mult}
            if l2sp:
                g["weight_decay"] = 0.0
            out.append(g)
        claimed = {id(p) for _, ps in groups for p in ps}
        rest = [p for p in self.module.parameters() if id(p) not in claimed]
        head = {"params": rest, "lr": self.lr * self.head_lr_mult, "name": "head", "lr_mult": self.head_lr_mult}
        if l2sp and self.l2sp_beta > 0:
            head["weight_decay"] = 0.0
        out.append(head)
        self.lr_groups_ = {g["name"]: g["lr"] for g in out}
        return out

    # -- freezing schedule (LP-FT here; FreezeTune overrides) -------------------------------------
    def trainable_group_indices(self, epoch: int, n_groups: int) -> list[int]:
        """Indices of the backbone groups that train during ``epoch`` (the head always trains)."""
        return [] if epoch < self.lp_epochs_ else list(range(n_groups))

    def resolve_recipe(self) -> None:
        """The values that run for the 'auto' settings: the pre-trained recipe when the backbone has learned
        weights (``Backbone.has_pretrained_weights``), plain training of every layer otherwise."""
        pre = getattr(self.backbone_, "has_pretrained_weights", True)
        self.lp_epochs_ = int(self.lp_epochs) if self.lp_epochs is not None else (int(self.epochs) // 2 if pre else 0)
        self.backbone_lr_mult_ = float(self.backbone_lr_mult) if self.backbone_lr_mult is not None else (
            PRETRAINED_BACKBONE_LR_MULT if pre else 1.0)
        self.bn_policy_ = self.bn_policy if self.bn_policy != "auto" else (PRETRAINED_BN_POLICY if pre else "eval")

    def setup(self, train, **roles) -> None:
        self.resolve_recipe()
        self._groups = self.backbone_groups()
        self._norm_group = norm_layers(self.model_.backbone, self._groups)
        if self.bn_policy_ == "frozen":
            for m, _ in self._norm_group:
                for p in m.parameters(recurse=False):
                    p.requires_grad_(False)
        self._l2sp_ref = None
        if self.l2sp_alpha > 0:
            self._l2sp_ref = [(p, p.detach().clone()) for p in self.model_.backbone.parameters()]
        self._apply_trainable(0)

    def _apply_trainable(self, epoch: int) -> list[str]:
        active = set(self.trainable_group_indices(epoch, len(self._groups)))
        norm_params = {id(p) for m, _ in self._norm_group for p in m.parameters(recurse=False)}
        for i, (_, params) in enumerate(self._groups):
            for p in params:
                frozen_bn = self.bn_policy_ == "frozen" and id(p) in norm_params
                p.requires_grad_(i in active and not frozen_bn)
        if self.bn_policy_ == "train":
            self.model_.eval_norms = []
        elif self.bn_policy_ == "eval":
            self.model_.eval_norms = [m for m, g in self._norm_group if g not in active]
        else:
            self.model_.eval_norms = [m for m, _ in self._norm_group]
        self.trainable_groups_ = [self._groups[i][0] for i in sorted(active)]
        return self.trainable_groups_

    def on_fit_start(self, trainer) -> None:
        # what the optimizer actually holds (base rates before the schedule's multiplier)
        self.optimizer_lrs_ = {g.get("name", str(i)): g.get("initial_lr", g["lr"])
                               for i, g in enumerate(trainer.optimizer.param_groups)}

    def on_epoch_start(self, trainer, epoch: int) -> None:
        before = list(getattr(self, "trainable_groups_", []))
        now = self._apply_trainable(epoch)
        if now != before and epoch > 0:
            trainer.print(f"epoch {epoch + 1}: trainable backbone groups {now or '(head only)'}")

    def on_epoch_end(self, trainer, epoch: int, logs: dict) -> None:
        logs["trainable_groups"] = list(self.trainable_groups_)
        logs["n_trainable_groups"] = len(self.trainable_groups_)
        logs["n_trainable_params"] = sum(p.numel() for p in self.module.parameters() if p.requires_grad)

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
