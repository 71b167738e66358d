"""Strategies: one module per strategy, all subclasses of Strategy, found through the registry."""
import importlib

from .base import Classifier, NeuralStrategy, Strategy
from .registry import create_strategy, get_strategy_class, list_strategies, register_strategy

# Every strategy module; each registers its classes on import.
STRATEGY_MODULES = (
    "finetune", "freeze", "features", "lora",                # reuse weights
    "domain_adaptation", "adversarial",                       # domain shift
    "fewshot", "zeroshot",                                    # scarce data
    "multitask", "progressive", "continual", "distill",       # many tasks, efficiency
)
_loaded = False


def _load_all():
    global _loaded
    if _loaded:
        return
    _loaded = True
    for mod in STRATEGY_MODULES:
        importlib.import_module(f"{__name__}.{mod}")


__all__ = ["Strategy", "NeuralStrategy", "Classifier", "create_strategy", "get_strategy_class", "list_strategies",
           "register_strategy", "STRATEGY_MODULES"]
