"""Strategies: one module per strategy, all subclasses of Strategy, found through the registry."""
from .base import Classifier, NeuralStrategy, Strategy
from .registry import STRATEGY_MODULES, create_strategy, get_strategy_class, list_strategies, register_strategy

__all__ = ["Strategy", "NeuralStrategy", "Classifier", "create_strategy", "get_strategy_class", "list_strategies",
           "register_strategy", "STRATEGY_MODULES"]
