"""Moved to :mod:`transferkit.strategies.domain.adversarial` (issue 27 stage E). This alias keeps the old import path
working until the issue's last stage removes it: it is the same module object, so patches through either name agree."""
import sys

from .domain import adversarial as _moved

sys.modules[__name__] = _moved
