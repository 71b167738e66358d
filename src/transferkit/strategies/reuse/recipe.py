"""The recipe of training a pre-trained network on new data, shared by fine-tuning and distillation into a
pre-trained student: per-layer-group learning rates, LP-FT and the BatchNorm policy.

On a pre-trained backbone (``Backbone.has_pretrained_weights``) the 'auto' settings give the recipe chosen on
evidence in issue 23 (BENCHMARKS.md, "the default recipe"): the head alone on the frozen body for half the epochs
(LP-FT, Kumar et al., ICLR 2022), then every layer with the body at a tenth of the head's rate, every BatchNorm layer
frozen. From a random initialisation none of that applies (``PLAIN_RECIPE``): every layer trains at ``lr`` from the
first step, BatchNorm in training mode. Layer-wise rates: a decay factor over the groups, stem -> top (``lr_decay``;
Howard & Ruder 2018, timm's ``layer_decay``) or explicit multipliers (``group_lr_mults``), as real optimizer
parameter groups.

:class:`PretrainedRecipe` is a mixin placed before a :class:`NeuralStrategy` whose ``build_model`` returns a
:class:`layers.ReuseClassifier` (``backbone``, ``head`` and the BatchNorm layers kept in eval mode).
"""
from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from ...params import DICT, STR, Interval, ListOf, Options
from ..base import NON_NEGATIVE, POSITIVE
from .layers import BN_POLICIES, backbone_groups, explicit_multipliers, norm_layers

# The recipe on pre-trained weights (module docstring); from a random initialisation: lp 0, mult 1, 'eval'.
PRETRAINED_BACKBONE_LR_MULT = 0.1
PRETRAINED_BN_POLICY = "frozen"
# The behaviour before issue 23's recipe: every layer at the rates given from the first step, BatchNorm training.
# Pre-training from scratch uses it, and so do the benchmarks whose recorded figures were measured with it.
PLAIN_RECIPE = {"lp_epochs": 0, "backbone_lr_mult": 1.0, "bn_policy": "eval"}


class PretrainedRecipe:
    """Layer-group learning rates, LP-FT and the BatchNorm policy (the module docstring).

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
        bn_policy: 'auto' (default): 'frozen' on a pre-trained backbone, 'eval' from a random initialisation;
            'frozen' (every backbone BatchNorm in eval mode with its affine parameters fixed, even when its
            group trains: small batches, and the micro-batches of the training memory budget, cannot estimate
            better statistics than the pre-trained ones), 'eval' (BatchNorm of *frozen* layers keeps its running
            statistics, so frozen layers stay exactly as loaded) or 'train' (statistics keep updating).

    After ``fit``: ``lr_groups_`` (name -> configured learning rate), ``lp_epochs_``, ``backbone_lr_mult_`` and
    ``bn_policy_`` (the values that ran), ``trainable_groups_``; each epoch's history lists its trainable groups.
    """

    _parameter_constraints = {
        "lr_decay": [Interval(float, 0, 1, closed="right")], "group_lr_mults": [None, STR, ListOf(NON_NEGATIVE), DICT],
        "head_lr_mult": [POSITIVE], "backbone_lr_mult": [None, NON_NEGATIVE], "lp_epochs": [None, Interval(int, 0, "epochs")],
        "bn_policy": [Options(*BN_POLICIES)],
    }

    def __init__(self, *, lr_decay: float = 1.0, group_lr_mults=None, head_lr_mult: float = 1.0,
                 backbone_lr_mult: float | None = None, lp_epochs: int | None = None, bn_policy: str = "auto", **kwargs):
        super().__init__(**kwargs)
        self.lr_decay, self.group_lr_mults, self.head_lr_mult = lr_decay, group_lr_mults, head_lr_mult
        self.backbone_lr_mult, self.lp_epochs, self.bn_policy = backbone_lr_mult, lp_epochs, bn_policy

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
        out = [{"params": params, "lr": self.lr * mult, "name": f"backbone.{name}", "lr_mult": mult}
               for (name, params), mult in zip(groups, mults)]
        claimed = {id(p) for _, ps in groups for p in ps}
        rest = [p for p in self.module.parameters() if id(p) not in claimed]
        out.append({"params": rest, "lr": self.lr * self.head_lr_mult, "name": "head", "lr_mult": self.head_lr_mult})
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
        super().setup(train, **roles)
        self.resolve_recipe()
        self._groups = self.backbone_groups()
        self._norm_group = norm_layers(self.model_.backbone, self._groups)
        if self.bn_policy_ == "frozen":
            for m, _ in self._norm_group:
                for p in m.parameters(recurse=False):
                    p.requires_grad_(False)
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
