"""The source-only baseline of domain adaptation (see ``base``)."""
from __future__ import annotations

from ..registry import register_strategy
from .base import DomainAdaptation


@register_strategy
class SourceOnly(DomainAdaptation):
    """Source-only baseline: cross-entropy on the labelled source, no alignment; the same model, validators
    and diagnostics as the adaptation methods, so the comparison isolates the transfer loss.

    Example:
        >>> SourceOnly(backbone="builtin:small-cnn", epochs=5).fit(source, target=target).evaluate(target_test)
    """

    name = "source-only"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)

    def train_loader(self, train, target=None, **roles):
        return self.loader(train, train=True)

    def training_step(self, batch) -> dict:
        x, y = batch
        logits = self.model_(x)
        loss = self.loss(logits, y)
        return {"loss": loss, "cls_loss": loss, "acc": (logits.argmax(1) == y).float().mean()}
