"""Zero-shot: classes with no images at all, only attributes. Which semantic model transfers?"""
from __future__ import annotations

from ..data import restrict_classes
from ..data.semantics import builtin_semantics
from ..engine.verdict import decide
from ..strategies import create_strategy
from ..strategies.scarce.zeroshot import calibration_from_seen
from .situation import Outcome, Situation, register_situation

# Unseen classes: spread over the categories, so that every attribute of an unseen class is seen on some training
# class (the usual ZSL split design, e.g. Xian et al. 2019).
UNSEEN = {"fashion-mnist": ["Pullover", "Dress", "Sneaker"], "digits": ["2", "5", "8"]}


def run(ctx, b) -> Outcome:
    semantics = builtin_semantics(ctx.dataset)
    unseen = UNSEEN[ctx.dataset]
    seen_idx = [i for i, c in enumerate(ctx.train.classes) if c not in unseen]
    unseen_idx = [ctx.train.classes.index(c) for c in unseen]
    seen = ctx.cap(restrict_classes(ctx.train, seen_idx), b["per_class"])
    unseen_test = ctx.cap(restrict_classes(ctx.test, unseen_idx), b["per_class"])
    both_test = ctx.cap(ctx.test, b["per_class"] // 2)
    scores, h, times = {}, {}, {}
    for name in b["candidates"]:
        extra = {"epochs": ctx.epochs(len(seen)), "lr": 1e-2} if name == "bilinear-zsl" else {}
        s = create_strategy(name, **ctx.common(backbone=ctx.backbone, **extra))
        s.fit(seen, semantics=semantics)
        m = s.evaluate(unseen_test)
        g = s.evaluate(both_test, calibration=calibration_from_seen(s, seen))
        scores[name], times[name] = m["zsl_accuracy"], s.fit_time_
        h[name] = g.get("gzsl_h", float("nan"))
        ctx.record(SITUATION.name, name, s, {**m, **{k: v for k, v in g.items() if k.startswith("gzsl")},
                                             "accuracy": m["zsl_accuracy"]}, unseen_classes=unseen)
    v = decide(scores, cost=times)
    reason = (f"on {len(unseen)} classes never seen in training ({', '.join(unseen)}), from attributes alone "
              f"(chance {1 / len(unseen):.0%}): {v.reason}; generalized ZSL over all {ctx.train.num_classes} classes, "
              f"calibrated stacking: {v.winner}'s harmonic mean {h[v.winner]:.1%}")
    return SITUATION.outcome("unseen-class accuracy (ZSL)", scores, v, reason, details={"gzsl_h": h, "time_s": times})


SITUATION = register_situation(Situation(
    name="zero-shot",
    question="Classes with no images at all, only attributes: which semantic model transfers?",
    family="scarce-data", approach="zero-shot", run=run,
    candidates={"eszsl": "zero-shot", "dap": "zero-shot", "bilinear-zsl": "zero-shot"},
    budget={"per_class": 300}, quick={"per_class": 60},
    constraints=lambda b: {"unseen_classes": "attributes"},
))
