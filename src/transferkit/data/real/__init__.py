"""Real image datasets by name (each module registers itself): hymenoptera photos, Omniglot, USPS."""
from . import hymenoptera  # noqa: F401
