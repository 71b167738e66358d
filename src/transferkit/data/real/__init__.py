"""Real image datasets by name (each module registers itself): hymenoptera photos, Omniglot, USPS."""
from . import hymenoptera  # noqa: F401
from . import omniglot  # noqa: F401
from . import usps  # noqa: F401
