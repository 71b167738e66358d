"""Layer freezing and progressive (gradual) unfreezing of a pre-trained backbone.

Freeze the whole backbone (train the head only) or its first K layer groups; optionally unfreeze one more
group every E epochs from the top down (ULMFiT's gradual unfreezing). The optimizer holds every parameter
from the start; a frozen parameter has ``requires_grad=False``, receives no gradient and is skipped, so
unfreezing a group only flips the flag and the per-group learning rates and the schedule simply continue.
"""
from __future__ import annotations

from ...errors import TransferkitError
from ...params import Interval, Options
from .finetune import FineTune
from ..registry import register_strategy

FREEZE_CHOICES = ("none", "all-but-head")


@register_strategy
class FreezeTune(FineTune):
    """Train a pre-trained backbone with a frozen prefix of its layer groups, optionally unfrozen over time.

    ``freeze='all-but-head'`` (default) trains only the new head; an integer K freezes the first K groups
    (stem first; fastai's ``freeze_to(K)``) and trains the rest. With ``unfreeze_every=E`` one more group is
    unfrozen every E epochs from the top down until ``freeze_min`` groups stay frozen (0: the whole network).
    References: Howard & Ruder, "Universal Language Model Fine-tuning for Text Classification" (ULMFiT),
    ACL 2018 (gradual unfreezing, one group per epoch, with discriminative rates); Yosinski et al., NeurIPS
    2014 (which layers transfer); fastai ``freeze_to``; ``timm.utils.freeze``.

    Inputs: labelled ``train`` (optional ``val``). Images (B, C, H, W) in [0, 1] -> logits (B, n_classes).

    Args:
        freeze: 'all-but-head' (default), 'none', or an int K in [0, n_groups] (groups frozen at the start).
        unfreeze_every: E epochs between two unfreezing steps (ULMFiT: 1); None (default) keeps the frozen
            groups frozen for the whole run.
        freeze_min: groups that stay frozen however long the schedule runs (default 0).
        bn_policy: 'eval' (default: BatchNorm layers of frozen groups keep their statistics, so frozen groups
            are bit-identical after training), 'train' (their statistics keep updating), 'frozen' (every
            backbone BatchNorm in eval mode with fixed affine parameters), 'auto' (fine-tuning's choice).
        backbone_lr_mult: the unfrozen groups' rate relative to ``lr`` (default 1.0; fine-tuning's recipe uses
            0.1 on a pre-trained backbone, not evaluated for gradual unfreezing).
        **kwargs: :class:`FineTune`'s options (``lr_decay``, ``group_lr_mults``, ``l2sp_alpha``...) and the
            shared training parameters.

    ``history_[e]["trainable_groups"]`` lists the backbone groups that trained in epoch ``e``;
    ``unfreeze_schedule_`` maps epoch -> the groups trainable from that epoch on.

    Example:
        >>> ft = FreezeTune(backbone="file:runs/pretrain", freeze="all-but-head", unfreeze_every=1, epochs=6,
        ...                 lr_decay=1 / 2.6)
        >>> ft.fit(train).history_[0]["trainable_groups"]
        []
    """

    name = "freeze"
    family = "reuse-weights"

    _parameter_constraints = {
        "freeze": [Options(*FREEZE_CHOICES), Interval(int, 0)], "unfreeze_every": [None, Interval(int, 1)],
        "freeze_min": [Interval(int, 0)],
    }

    def __init__(self, *, freeze="all-but-head", unfreeze_every: int | None = None, freeze_min: int = 0,
                 bn_policy: str = "eval", backbone_lr_mult: float | None = 1.0, **kwargs):
        super().__init__(bn_policy=bn_policy, backbone_lr_mult=backbone_lr_mult, **kwargs)
        self.freeze, self.unfreeze_every, self.freeze_min = freeze, unfreeze_every, freeze_min

    def frozen_at_start(self, n_groups: int) -> int:
        f = self.freeze
        if f == "all-but-head":
            return n_groups
        if f == "none":
            return 0
        if int(f) > n_groups:
            raise TransferkitError(f"The 'freeze' parameter of {type(self).__name__} is {f} but the backbone "
                                   f"has only {n_groups} layer groups ({[n for n, _ in self._groups]}).")
        return int(f)

    def trainable_group_indices(self, epoch: int, n_groups: int) -> list[int]:
        frozen = self.frozen_at_start(n_groups)
        if self.unfreeze_every:
            floor = min(frozen, self.freeze_min)
            frozen = max(floor, frozen - epoch // int(self.unfreeze_every))
        return list(range(frozen, n_groups))

    def setup(self, train, **roles) -> None:
        super().setup(train, **roles)
        names = [n for n, _ in self._groups]
        schedule, last = {}, None
        for e in range(int(self.epochs)):
            now = [names[i] for i in self.trainable_group_indices(e, len(names))]
            if now != last:
                schedule[e] = now
                last = now
        self.unfreeze_schedule_ = schedule
