"""A situation of the tour, its outcome, the registry, and the context every situation runs in.

A :class:`Situation` is one question a practitioner faces, the family of strategies that answers it, the advisor
approach a practitioner would be told to use, its candidates, its own full and quick budgets, and ``run(ctx,
budget) -> Outcome``. Each one lives in its own module of this package and registers itself on import, in the
manner of the strategies and the built-in datasets; ``list_situations()`` imports them in the tour's order.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..data import ImageDataset, class_split, k_per_class, load_digits, load_fashion_mnist, stratified_split
from ..engine import write_result

# The tour's order: one module of this package per situation.
SITUATION_MODULES = ("limited_labels", "domain_shift", "robustness", "few_shot", "zero_shot", "multi_task",
                     "continual", "deployment")
# What every situation shares: the source pre-training, the target test set and the training length.
SHARED = {
    "full": dict(pretrain_per_class=1500, pretrain_epochs=4, test_per_class=200, epochs=3, min_steps=200,
                 arch="builtin:small-cnn"),
    "quick": dict(pretrain_per_class=120, pretrain_epochs=6, test_per_class=40, epochs=2, min_steps=60,
                  arch="builtin:small-cnn"),
}


@dataclass
class Outcome:
    """One situation: every candidate's headline metric, the winner, the reason and the advisor's pick."""
    situation: str
    question: str
    metric: str
    scores: dict
    winner: str
    reason: str
    advisor: str = ""
    details: dict = field(default_factory=dict)

    def row(self) -> dict:
        return {"situation": self.situation, "metric": self.metric, "winner": self.winner,
                "scores": {k: round(float(v), 4) for k, v in self.scores.items()}, "reason": self.reason,
                "advisor": self.advisor}


@dataclass(frozen=True)
class Situation:
    """One question of the tour and how it is settled.

    Args:
        name, question: the situation's id and the practitioner's question.
        family: the strategy family that answers it (one of the five of ``Strategy.family``).
        approach: the advisor approach (``advisor.rules.APPROACHES``) a practitioner would expect to be told.
        run: ``run(ctx, budget) -> Outcome``; writes each candidate's result under ``ctx.out / name``.
        budget, quick: this situation's settings in the full and the quick tour (``budget["candidates"]`` defaults
            to ``candidates``).
        candidates: the competing strategies (or set-ups), in the order they are reported.
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
    candidates: tuple = ()
    constraints: Callable = field(default=lambda budget: {})

    def settings(self, quick: bool) -> dict:
        return {"candidates": list(self.candidates), **(self.quick if quick else self.budget)}


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


# -- the context --------------------------------------------------------------------------------------------

def load_halves(dataset: str, seed: int):
    """(train, test) of the whole dataset and its (source, target) class names: the first and second half."""
    if dataset == "fashion-mnist":
        train, test = load_fashion_mnist("train"), load_fashion_mnist("test")
    else:
        train, test = stratified_split(load_digits(), 0.3, seed=seed)
    half = train.num_classes // 2
    return train, test, train.classes[:half], train.classes[half:]


class Context:
    """What the situations share: the data and its halves, the shared budget, the pre-trained backbone spec, the
    output folder and the seed, plus the small helpers every situation uses."""

    def __init__(self, dataset: str, budget: dict, out, seed: int, progress: bool):
        self.dataset, self.budget, self.out, self.seed, self.progress = dataset, budget, Path(out), seed, progress
        self.train, self.test, self.source_classes, self.target_classes = load_halves(dataset, seed)
        self.src_train, self.tgt_train = class_split(self.train, self.source_classes)
        self.src_test, self.tgt_test = class_split(self.test, self.source_classes)
        self.tgt_test = self.cap(self.tgt_test, budget["test_per_class"])
        self.backbone: str | None = None

    def cap(self, ds: ImageDataset, per_class: int) -> ImageDataset:
        """At most ``per_class`` images of each class (seeded)."""
        return k_per_class(ds, per_class, seed=self.seed, strict=False)

    def epochs(self, n_images: int, batch_size: int = 64, scale: float = 1.0) -> int:
        """Epochs giving at least ``min_steps`` optimizer steps (small training sets get more passes)."""
        steps_per_epoch = max(1, -(-n_images // batch_size))
        return max(self.budget["epochs"], -(-int(self.budget["min_steps"] * scale) // steps_per_epoch))

    def common(self, **kw) -> dict:
        """The parameters every candidate shares (seed, no progress bar, batch 64), updated by ``kw``."""
        return {"seed": self.seed, "progress": False, "batch_size": 64, **kw}

    def record(self, situation: str, name: str, strategy, metrics: dict, **extra) -> None:
        """Write one candidate's ``result.json`` under ``out/situation/name``."""
        res = strategy.result(metrics, data={"dataset": self.dataset, "situation": situation}, extra=extra)
        res["tour"] = {"situation": situation, "candidate": name}
        write_result(self.out / situation / name, res)

    def log(self, msg: str) -> None:
        if self.progress:
            print(msg, flush=True)

