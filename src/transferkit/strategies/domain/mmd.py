"""DAN: multi-kernel MMD between source and target embeddings (see ``base``)."""
from __future__ import annotations

from ...params import ListOf
from ..base import POSITIVE
from ..registry import register_strategy
from .base import DomainAdaptation
from .losses import mk_mmd


@register_strategy
class MMD(DomainAdaptation):
    """DAN: minimise the multi-kernel maximum mean discrepancy between source and target embeddings, so both
    domains' feature distributions coincide in a reproducing-kernel Hilbert space.

    Paper: Long et al., "Learning Transferable Features with Deep Adaptation Networks", ICML 2015.
    Inputs: labelled source ``train``, unlabelled ``target``. Features (B, D) of each batch are compared with
    Gaussian kernels at ``kernel_multipliers`` x the mean pairwise squared distance (DAN's 5-kernel family).

    Example:
        >>> MMD(epochs=10).fit(source, target=target).evaluate(target_test)
    """

    name = "mmd"

    _parameter_constraints = {
        "kernel_multipliers": [ListOf(POSITIVE, min_length=1)],
    }

    def __init__(self, *, kernel_multipliers=(0.25, 0.5, 1.0, 2.0, 4.0), **kwargs):
        super().__init__(**kwargs)
        self.kernel_multipliers = kernel_multipliers

    def transfer_loss(self, fs, ft, ls, lt):
        return mk_mmd(fs, ft, tuple(self.kernel_multipliers)), {}
