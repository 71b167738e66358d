"""SimpleShot (Wang et al. 2019): nearest centroid on centred, L2-normalised frozen features."""
from __future__ import annotations


import torch.nn.functional as F

from ...params import Options
from ..registry import register_strategy
from .episodic import _FrozenBaseline, prototype_logits, prototypes


@register_strategy
class SimpleShot(_FrozenBaseline):
    """Nearest class centroid on centred, L2-normalised frozen features ("CL2N").

    Features are centred by the mean base-class feature, L2-normalised, and each query takes the label
    of the closest support-class mean (Euclidean). No training: the backbone is used as given.
    Reference: Wang, Chao, Weinberger & van der Maaten, "SimpleShot: Revisiting Nearest-Neighbor
    Classification for Few-Shot Learning", arXiv 1911.04623 (2019).

    Inputs: base classes ``train`` (for the centring mean and the backbone). Features (N, D).

    Args:
        normalize: 'cl2n' (centre + L2, the paper's best), 'l2' or 'none'.
        **kwargs: the frozen-feature parameters (backbone, batch size, cache...). To train the backbone on the base
            classes first, as the paper does, pass ``backbone=train_on_base(base, ...)``.

    Example:
        >>> SimpleShot(backbone="file:runs/pretrain").fit(base).evaluate(novel, k_shot=1)
    """

    name = "simpleshot"

    _parameter_constraints = {
        "normalize": [Options("cl2n", "l2", "none")],
    }

    def __init__(self, *, normalize: str = "cl2n", **kwargs):
        super().__init__(**kwargs)
        self.normalize = normalize

    def _transform_features(self, f):
        if self.normalize == "cl2n" and hasattr(self, "base_mean_"):
            f = f - self.base_mean_
        return F.normalize(f, dim=-1) if self.normalize != "none" else f

    def _scores(self, s, sy, q, n_way):
        return prototype_logits(q, prototypes(s, sy, n_way), "euclidean")
