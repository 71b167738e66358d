"""Fine-tuning: update the whole pre-trained network with a new head and small learning rates."""
from __future__ import annotations

from .base import NeuralStrategy
from .registry import register_strategy


@register_strategy
class FineTune(NeuralStrategy):
    """Fine-tune every layer of a pre-trained backbone with a new linear head.

    Reference: Yosinski et al., "How transferable are features in deep neural networks?", NeurIPS 2014.
    Inputs: labelled ``train`` (optional ``val``). Images (B, C, H, W) in [0, 1] -> logits (B, n_classes).

    Example:
        >>> FineTune(backbone="file:runs/pretrain", epochs=5).fit(train).evaluate(test)["accuracy"]
    """

    name = "finetune"
    family = "reuse-weights"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
