"""The tour: the situations transfer learning exists for, each settled by measurement on one dataset.

``run_tour`` pre-trains a backbone on half of the classes (the *source*; cached between runs), then walks through
the situations on the other half (the *target*), runs the competing strategies of each under one budget and
seed, writes every run's ``result.json``, prints a summary table with the winner and the reason, puts the
advisor's rule-based pick beside it, and renders the HTML report.

One module per situation (``limited_labels.py``, ``domain_shift.py``, ...), each registering a
:class:`Situation`; ``situation.py`` holds the registry and the shared :class:`Context`, ``runner.py`` the loop.

    transferkit tour                            # Fashion-MNIST (digits when it is not installed)
    transferkit tour --dataset digits --quick   # a couple of minutes (CI)
"""
from .runner import run_tour, summary_markdown
from .context import SHARED, Context
from .situation import Outcome, Situation, list_situations, register_situation

SITUATIONS = {name: s.question for name, s in list_situations().items()}

__all__ = ["run_tour", "summary_markdown", "SITUATIONS", "SHARED", "Context", "Outcome", "Situation",
           "list_situations", "register_situation"]
