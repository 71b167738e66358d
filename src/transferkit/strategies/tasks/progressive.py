"""Progressive neural networks (Rusu et al. 2016) on any backbone with sequential feature-map stages.

One column per task, each a copy of the backbone's stages (``Backbone.stage_modules()``: the builtins and
the ResNet family) with its own head. When task k arrives, columns 0..k-1 are frozen (parameters and
BatchNorm statistics) and column k receives scaled, non-linear lateral adapters from every earlier column
into each of its stages: the output of stage i of column k is ``h_i^k + sum_{j<k} U_i^{k:j} relu(V_i^{k:j}
(alpha_i^{k:j} h_i^j))``, with V, U 1x1 convolutions on feature maps (Linear layers on vectors), so the next
stage (or the head, after the last stage) sees the earlier columns' features. The task id routes inference to
its column, so earlier tasks are never forgotten.
"""
from __future__ import annotations

import contextlib
import copy

import torch
from torch import nn

from ...params import Interval, Options
from ..base import NON_NEGATIVE
from ..registry import register_strategy
from .sequence import TaskSequenceStrategy


class LateralAdapter(nn.Module):
    """Rusu 2016's non-linear lateral connection: ``U relu(V (alpha * h))`` with a learned scalar scale alpha.

    (B, C, H, W) -> (B, C_out, H, W) through 1x1 convolutions (reduced to C // reduction channels in
    between), or (B, C) -> (B, C_out) through Linear layers.
    """

    def __init__(self, c_in: int, c_out: int, *, spatial: bool, reduction: int = 4, init_scale: float = 0.1):
        super().__init__()
        mid = max(1, c_in // reduction)
        layer = (lambda a, b: nn.Conv2d(a, b, 1)) if spatial else nn.Linear
        self.alpha = nn.Parameter(torch.tensor(float(init_scale)))
        self.v = layer(c_in, mid)
        self.u = layer(mid, c_out)

    def forward(self, h):
        return self.u(torch.relu(self.v(self.alpha * h)))


class Column(nn.Module):
    """One task's column: the backbone's stages, lateral adapters from earlier columns, a linear head."""

    def __init__(self, stages: list[nn.Module], channels: list[int], spatial: list[bool], n_earlier: int,
                 num_classes: int, *, reduction: int, init_scale: float):
        super().__init__()
        self.stages = nn.ModuleList(stages)
        self.laterals = nn.ModuleList([
            nn.ModuleList([LateralAdapter(c, c, spatial=s, reduction=reduction, init_scale=init_scale)
                           for _ in range(n_earlier)])
            for c, s in zip(channels, spatial)])
        self.head = nn.Linear(channels[-1], num_classes)


class ProgressiveNet(nn.Module):
    """The columns of a progressive network. ``forward(x, task)`` -> (B, n_classes of ``task``) logits.

    ``x``: (B, C, H, W) in [0, 1]; normalised with the backbone's mean/std. Frozen columns always run in eval
    mode (``train()`` keeps them there) and without gradients.
    """

    def __init__(self, backbone):
        super().__init__()
        self.register_buffer("mean", backbone.mean.clone())
        self.register_buffer("std", backbone.std.clone())
        self.columns = nn.ModuleList()
        self.n_frozen = 0

    def freeze_upto(self, n: int) -> None:
        self.n_frozen = n
        for col in self.columns[:n]:
            col.requires_grad_(False)
            col.eval()

    def train(self, mode: bool = True):
        super().train(mode)
        for col in self.columns[:self.n_frozen]:
            col.eval()
        return self

    def forward(self, x, task: int):
        h0 = (x - self.mean) / self.std
        feats: list[list[torch.Tensor]] = []
        for k in range(task + 1):
            col = self.columns[k]
            ctx = torch.no_grad() if k < self.n_frozen and torch.is_grad_enabled() else contextlib.nullcontext()
            with ctx:
                h, outs = h0, []
                for i, stage in enumerate(col.stages):
                    h = stage(h)
                    if k:
                        h = h + sum(col.laterals[i][j](feats[j][i]) for j in range(k))
                    outs.append(h)
            feats.append(outs)
        h = feats[task][-1]
        return self.columns[task].head(h.mean(dim=(2, 3)) if h.dim() == 4 else h)


@register_strategy
class ProgressiveNetworks(TaskSequenceStrategy):
    """Progressive neural networks: a new column per task with lateral adapters from frozen earlier columns.

    Rusu et al., "Progressive Neural Networks", arXiv:1606.04671, 2016. Zero forgetting by construction
    (earlier columns are bit-identical after later tasks), transfer through the laterals; the price is a model
    that grows by one column (+ adapters) per task.

    Args:
        backbone: any backbone with ``stage_modules()`` (builtins, timm/torchvision ResNets); each column
            starts from its weights (``column_init='pretrained'``, transfer learning) or is re-initialised
            (``'random'``, as in the paper).
        lateral_reduction: the 1x1-conv bottleneck of the adapters, C -> C // r -> C (default 4; the paper
            reduces the lateral dimensionality, by 2 in its Atari columns).
        lateral_scale: initial value of each adapter's learned scale alpha (the paper: "a small random value";
            default 0.1).
        **kwargs: the shared training parameters (epochs and lr apply to every task).

    Inputs: ``tasks`` (list of ImageDatasets), optional ``eval_tasks`` (one test set per task) for the accuracy
    matrix. Images (B, C, H, W) in [0, 1] -> logits (B, n_classes of the routed task).

    Example:
        >>> from transferkit.data import task_sequence
        >>> pnn = ProgressiveNetworks(backbone="builtin:small-cnn", epochs=2)
        >>> pnn.fit(task_sequence(train, 5), eval_tasks=task_sequence(test, 5))
        >>> pnn.continual_metrics_["forgetting"]        # 0.0
        >>> pnn.predict(task_sequence(test, 5)[1], task=1)
    """

    name = "progressive"

    _parameter_constraints = {
        "column_init": [Options("pretrained", "random")], "lateral_reduction": [Interval(int, 1)],
        "lateral_scale": [NON_NEGATIVE],
    }

    def __init__(self, *, column_init: str = "pretrained", lateral_reduction: int = 4, lateral_scale: float = 0.1,
                 **kwargs):
        super().__init__(**kwargs)
        self.column_init, self.lateral_reduction, self.lateral_scale = column_init, lateral_reduction, lateral_scale

    def _new_model(self):
        self._stages = self.backbone_.stage_modules()  # raises with a clear message for other backbones
        c, h, w = self.backbone_.data_config["input_size"]
        channels, spatial = [], []
        with torch.no_grad():
            was = self.backbone_.training
            self.backbone_.eval()
            z = torch.zeros(1, c, h, w)
            for stage in self._stages:
                z = stage(z)
                channels.append(z.shape[1])
                spatial.append(z.dim() == 4)
            self.backbone_.train(was)
        self._channels, self._spatial = channels, spatial
        return ProgressiveNet(self.backbone_)

    def _begin_task(self, k, data):
        stages = [copy.deepcopy(s) for s in self._stages]
        if self.column_init == "random":
            for s in stages:
                for m in s.modules():
                    if hasattr(m, "reset_parameters"):
                        m.reset_parameters()
        col = Column(stages, self._channels, self._spatial, k, len(self.task_classes_[k]),
                     reduction=self.lateral_reduction, init_scale=self.lateral_scale)
        self.model_.columns.append(col)
        self.model_.freeze_upto(k)

    def _end_task(self, k, data, restoring: bool = False):
        self.model_.freeze_upto(k + 1)

    def _trainable(self):
        return list(self.model_.columns[self.current_task_].parameters())

    def task_logits(self, x, task: int):
        return self.model_(x, task)

    def _restore(self, state, tensors):
        super()._restore(state, tensors)
        self.model_.freeze_upto(len(self.task_classes_))
