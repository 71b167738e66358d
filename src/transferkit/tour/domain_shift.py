"""Domain shift: trained on daytime images, deployed at night. Align the domains without night labels?"""
from __future__ import annotations

from ..data import stratified_split
from ..data.shifts import make_shift
from ..engine.verdict import decide
from ..strategies import create_strategy
from .situation import Outcome, Situation, register_situation


def run(ctx, b) -> Outcome:
    source, target_pool = stratified_split(ctx.cap(ctx.tgt_train, 2 * b["source_per_class"]), 0.5, seed=ctx.seed)
    target = make_shift(target_pool, "night", seed=ctx.seed).unlabelled()
    test = make_shift(ctx.tgt_test, "night", seed=ctx.seed + 1)
    scores, times = {}, {}
    for name in b["candidates"]:
        s = create_strategy(name, **ctx.common(backbone=ctx.backbone, epochs=ctx.epochs(len(source), 32), lr=3e-3,
                                               batch_size=32, selection="last"))
        s.fit(source, target=target)
        m = s.evaluate(test)
        scores[name], times[name] = m["accuracy"], s.fit_time_
        ctx.record(SITUATION.name, name, s, {**m, "oracle_target_accuracy": m["accuracy"]}, shift="night")
    v = decide(scores, cost=times)
    base = ("training on daytime images only (source-only) is among the tied: alignment adds nothing measurable"
            if "source-only" in v.tied else
            f"training on daytime images only reaches {scores.get('source-only', float('nan')):.1%}")
    reason = (f"{v.reason}; {base} (one seed; the last epoch is kept, so no night label influences the model; "
              f"labelled night images only score it)")
    return Outcome(SITUATION.name, SITUATION.question, "night-time test accuracy", scores, v.winner, reason,
                   tied=v.tied, details={"time_s": times})


SITUATION = register_situation(Situation(
    name="domain-shift",
    question="Trained on daytime images, deployed at night: align the domains without night labels?",
    family="domain-shift", approach="domain-adaptation", run=run,
    candidates={"source-only": "fine-tuning", "dann": "domain-adaptation", "mmd": "domain-adaptation",
                "coral": "domain-adaptation", "cdan": "domain-adaptation"},
    budget={"source_per_class": 300}, quick={"source_per_class": 60, "candidates": ["source-only", "dann", "coral"]},
    constraints=lambda b: {"labels_per_class": b["source_per_class"], "has_target": True},
))
