"""A situation of the tour, its outcome and the registry (the context every situation runs in: ``context.py``).

A :class:`Situation` is one question a practitioner faces, the family of strategies that answers it, the advisor
approach a practitioner would be told to use, its candidates, its own full and quick budgets, and ``run(ctx,
budget) -> Outcome``. Each one lives in its own module of this package and registers itself on import, in the
manner of the strategies and the built-in datasets; ``list_situations()`` imports them in the tour's order.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable


# The tour's order: one module of this package per situation.
SITUATION_MODULES = ("limited_labels", "domain_shift", "robustness", "few_shot", "zero_shot", "multi_task",
                     "continual", "deployment")


@dataclass
class Outcome:
    """One situation: every candidate's headline metric, the verdict under the tie rule (``engine.verdict``:
    ``winner``, the ``tied`` candidates, the ``reason``), and the advisor's pick beside it."""
    situation: str
    question: str
    metric: str
    scores: dict
    winner: str
    reason: str
    tied: list = field(default_factory=list)
    data: str = ""  # the data and backbone it was measured on (and why, when a fallback)
    evidence: tuple = ()  # (labelled data, backbone spec) the advisor measures, when not the tour's target half
    advisor: str = ""
    advisor_note: str = ""
    spread: dict = field(default_factory=dict)  # candidate -> run-to-run spread of its score, where measured
    details: dict = field(default_factory=dict)

    def row(self) -> dict:
        return {"situation": self.situation, "question": self.question, "metric": self.metric,
                "winner": self.winner, "tied": list(self.tied), "data": self.data,
                "spread": {k: round(float(v), 6) for k, v in self.spread.items()},
                "scores": {k: round(float(v), 6) for k, v in self.scores.items()}, "reason": self.reason,
                "advisor": self.advisor, "advisor_note": self.advisor_note}


@dataclass(frozen=True)
class Situation:
    """One question of the tour and how it is settled.

    Args:
        name, question: the situation's id and the practitioner's question.
        family: the strategy family that answers it (one of the five of ``Strategy.family``).
        approach: the advisor approach (``advisor.rules.APPROACHES``) a practitioner would expect to be told.
        run: ``run(ctx, budget) -> Outcome``; writes each candidate's result under ``ctx.out / name``.
        budget, quick: this situation's settings in the full and the quick tour (``budget["candidates"]`` defaults
            to every candidate).
        candidates: the competing strategies (or set-ups) in the order they are reported, each with the advisor
            approach it belongs to (None: a reference point, such as training from scratch).
        constraints: ``constraints(budget) -> dict`` of :class:`~transferkit.advisor.rules.Constraints` fields:
            what a practitioner in this situation would tell the advisor.
    """
    name: str
    question: str
    family: str
    approach: str
    run: Callable
    budget: dict
    quick: dict
    candidates: dict = field(default_factory=dict)
    constraints: Callable = field(default=lambda budget: {})

    def settings(self, quick: bool) -> dict:
        return {"candidates": list(self.candidates), **(self.quick if quick else self.budget)}

    def outcome(self, metric: str, scores: dict, verdict, reason: str, **fields) -> Outcome:
        """This situation's :class:`Outcome` from the tie rule's ``verdict`` (``engine.verdict.decide``)."""
        return Outcome(self.name, self.question, metric, scores, verdict.winner, reason, tied=verdict.tied, **fields)


_REGISTRY: dict[str, Situation] = {}


def register_situation(situation: Situation) -> Situation:
    if situation.name in _REGISTRY and _REGISTRY[situation.name] is not situation:
        raise TypeError(f"situation name {situation.name!r} is taken")
    _REGISTRY[situation.name] = situation
    return situation


def list_situations() -> dict[str, Situation]:
    """Every situation by name, in the tour's order."""
    for mod in SITUATION_MODULES:
        importlib.import_module(f"{__package__}.{mod}")
    return {s.name: s for s in sorted(_REGISTRY.values(), key=lambda s: _order(s.name))}


def _order(name: str) -> int:
    mod = name.replace("-", "_")
    return SITUATION_MODULES.index(mod) if mod in SITUATION_MODULES else len(SITUATION_MODULES)
