"""What fine-tuning treats layer by layer: the backbone's layer groups, their learning-rate multipliers and the
BatchNorm policy (the classifier that keeps chosen BatchNorm layers in eval mode while the rest trains).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from torch import nn

from ...errors import TransferkitError
from ..base import Classifier

BN_POLICIES = ("auto", "train", "eval", "frozen")
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)  # timm's BatchNormAct2d included


class ReuseClassifier(Classifier):
    """Backbone + linear head whose ``train()`` keeps chosen BatchNorm layers in eval mode.

    The trainer calls ``module.train()`` at every epoch start (after the callbacks' ``on_epoch_start``), so
    the BatchNorm policy lives here: the layers in ``eval_norms`` keep using (and never update) their
    running statistics while the rest of the network trains.
    """

    def __init__(self, backbone, num_classes: int, dropout: float = 0.0):
        super().__init__(backbone, num_classes, dropout)
        self.eval_norms: list[nn.Module] = []  # a plain list: not registered as submodules

    def train(self, mode: bool = True):
        super().train(mode)
        if mode:
            for m in self.eval_norms:
                m.eval()
        return self


def backbone_groups(bb) -> list[tuple[str, list[nn.Parameter]]]:
    """(name, parameters) per layer group of the backbone ``bb``, stem -> top; parameters no group claims join
    the top group (all of them form one 'backbone' group when the backbone declares none)."""
    groups = [(n, list(ps)) for n, ps in zip(bb.group_names, bb.layer_groups())]
    groups = [(n, ps) for n, ps in groups if ps]
    claimed = {id(p) for _, ps in groups for p in ps}
    rest = [p for p in bb.parameters() if id(p) not in claimed]
    if not groups:
        return [("backbone", rest)]
    if rest:
        groups[-1] = (groups[-1][0], groups[-1][1] + rest)
    return groups


def explicit_multipliers(m, names: Sequence[str], owner: str) -> list[float]:
    """The ``group_lr_mults`` parameter as one multiplier per group of ``names``: a list (one per group), a
    mapping (group name -> multiplier, 1 for the others) or, from the command line, "0.1,0.3,1"."""
    given, n = m, len(names)
    if isinstance(m, str):
        try:
            m = [float(v) for v in m.split(",")]
        except ValueError:
            raise TransferkitError(f"The 'group_lr_mults' parameter of {owner} must be numbers separated by "
                                   f"commas; got {given!r}.") from None
    if isinstance(m, Mapping):
        unknown = sorted(set(m) - set(names))
        if unknown:
            raise TransferkitError(f"The 'group_lr_mults' parameter of {owner} names unknown groups {unknown}; "
                                   f"the backbone's groups are {list(names)}.")
        mults = [float(m.get(name, 1.0)) for name in names]
    else:
        mults = [float(v) for v in m]
        if len(mults) != n:
            raise TransferkitError(f"The 'group_lr_mults' parameter of {owner} needs one multiplier per backbone "
                                   f"group ({n}: {list(names)}); got {len(mults)}.")
    if any(v < 0 for v in mults):
        raise TransferkitError(f"The 'group_lr_mults' parameter of {owner} must be >= 0; got {mults}.")
    return mults


def norm_layers(bb: nn.Module, groups: list[tuple[str, list[nn.Parameter]]]) -> list[tuple[nn.Module, int]]:
    """(BatchNorm module, index of its group in ``groups``) for every BatchNorm layer of the backbone ``bb``."""
    where = {id(p): i for i, (_, ps) in enumerate(groups) for p in ps}
    out = []
    for m in bb.modules():
        if isinstance(m, _NORMS):
            p = next(m.parameters(recurse=False), None)
            out.append((m, where.get(id(p), len(groups) - 1) if p is not None else len(groups) - 1))
    return out
