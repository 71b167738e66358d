"""The strategy registry: ``@register_strategy``, ``create_strategy(name, **params)``, ``list_strategies()``."""
from __future__ import annotations

import difflib
import importlib

from ..errors import TransferkitError, nearest

_REGISTRY: dict[str, type] = {}
# Every strategy module of this package; each registers its classes on import.
STRATEGY_MODULES = (
    "reuse.finetune", "reuse.freeze", "reuse.features", "reuse.lora",   # reuse weights
    "domain.source_only", "domain.dann", "domain.mmd", "domain.coral",  # domain shift
    "domain.cdan", "domain.adversarial",
    "scarce.protonet", "scarce.maml", "scarce.simpleshot", "scarce.probes",  # scarce data
    "scarce.dap", "scarce.eszsl", "scarce.bilinear", "scarce.clip",
    "tasks.multitask", "tasks.sequential", "tasks.ewc", "tasks.progressive",  # many tasks
    "efficiency.distill",                                               # efficiency
)
_loaded = False


def register_strategy(cls):
    """Class decorator: register a Strategy subclass under its ``name``."""
    name = getattr(cls, "name", None)
    if not name:
        raise TypeError(f"{cls.__name__} needs a class attribute 'name' to be registered")
    if name in _REGISTRY and _REGISTRY[name] is not cls:
        raise TypeError(f"strategy name {name!r} is taken by {_REGISTRY[name].__name__}")
    _REGISTRY[name] = cls
    return cls


def _ensure_loaded():
    """Import every strategy module once, so that the registry holds them all."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for mod in STRATEGY_MODULES:
        importlib.import_module(f"{__package__}.{mod}")


def get_strategy_class(name: str) -> type:
    _ensure_loaded()
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, _REGISTRY, n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise TransferkitError(f"Unknown strategy {name!r}.{hint} Valid strategies: {', '.join(sorted(_REGISTRY))}.")
    return _REGISTRY[name]


def create_strategy(name: str, **params):
    """A registered strategy with these parameters, validated (``Strategy.validate``): an unknown name is reported
    with the nearest valid one, a bad value with what it accepts, before any work. The command line, ``bench`` and
    the tour build their strategies here."""
    cls = get_strategy_class(name)
    valid = cls.param_names()
    unknown = [k for k in params if k not in valid]
    if len(unknown) == 1:
        raise TransferkitError(f"Unknown parameter {unknown[0]!r} for strategy {name!r}.{nearest(unknown[0], valid)} "
                               f"Valid: {', '.join(valid)} (see `transferkit strategies --params {name}`).")
    if unknown:
        raise TransferkitError(f"Unknown parameters {unknown} for strategy {name!r}. Valid: {', '.join(valid)} "
                               f"(see `transferkit strategies --params {name}`).")
    return cls(**params).validate()


def list_strategies(family: str | None = None) -> dict[str, type]:
    """Registered strategies by name (optionally one family)."""
    _ensure_loaded()
    return {n: c for n, c in sorted(_REGISTRY.items()) if family is None or c.family == family}
