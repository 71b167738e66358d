"""Bridge domains: unsupervised domain adaptation (source-only, DANN, MMD, CORAL, CDAN; the machinery in ``base``,
the alignment losses in ``losses``, the unsupervised validators in ``validators``) and adversarial (robust)
fine-tuning.

One strategy per module; each registers itself on import (``strategies.registry``)."""
