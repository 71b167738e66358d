"""Real image datasets by name (each module registers itself): hymenoptera photos, Omniglot, USPS, MNIST."""
from . import hymenoptera  # noqa: F401
from . import mnist  # noqa: F401
from . import omniglot  # noqa: F401
from . import usps  # noqa: F401
