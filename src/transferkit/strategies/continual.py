"""Moved to :mod:`transferkit.strategies.tasks` (issue 27 stage E): the base and the protocol to ``tasks.sequence``,
the strategies to ``tasks.sequential`` and ``tasks.ewc``. The old import path re-exports them until the issue's last
stage removes it."""
from .tasks.ewc import EWC
from .tasks.protocol import compare_continual, continual_metrics
from .tasks.sequence import MultiHeadNet, TaskSequenceStrategy
from .tasks.sequential import SequentialFineTune

__all__ = ["EWC", "MultiHeadNet", "SequentialFineTune", "TaskSequenceStrategy", "compare_continual",
           "continual_metrics"]
