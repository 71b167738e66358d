"""Many tasks: multi-task learning, and task sequences (sequential fine-tuning, EWC, progressive networks) on the
base in ``sequence``.

One strategy per module; each registers itself on import (``strategies.registry``)."""
