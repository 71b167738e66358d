"""Small models: knowledge distillation into a smaller student (export and int8 are in ``transferkit.export``).

One strategy per module; each registers itself on import (``strategies.registry``)."""
