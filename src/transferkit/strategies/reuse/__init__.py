"""Reuse weights: fine-tuning, layer freezing and progressive unfreezing, frozen features with scikit-learn, LoRA.

One strategy per module; each registers itself on import (``strategies.registry``)."""
