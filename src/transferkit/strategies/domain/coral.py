"""Deep CORAL: match source and target feature covariances (see ``base``)."""
from __future__ import annotations

from ..registry import register_strategy
from .base import DomainAdaptation
from .losses import coral_loss


@register_strategy
class CORAL(DomainAdaptation):
    """Deep CORAL: penalise the distance between source and target feature covariances, a cheap second-order
    alignment without a critic.

    Paper: Sun & Saenko, "Deep CORAL: Correlation Alignment for Deep Domain Adaptation", ECCV Workshops 2016.
    Inputs: labelled source ``train``, unlabelled ``target``; loss ``||C_s - C_t||_F^2 / (4 d^2)`` on (B, d)
    features. The paper sets the weight so both losses are comparable at the end; ``trade_off=1`` by default.

    Example:
        >>> CORAL(epochs=10).fit(source, target=target).evaluate(target_test)
    """

    name = "coral"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)

    def transfer_loss(self, fs, ft, ls, lt):
        return coral_loss(fs, ft), {}
