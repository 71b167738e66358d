"""Few-shot: new classes arrive with 1-5 examples each. Prototypes on frozen features, or meta-learning?"""
from __future__ import annotations

from ..engine.verdict import decide
from ..strategies import create_strategy
from .situation import Outcome, Situation, register_situation


def run(ctx, b) -> Outcome:
    base = ctx.cap(ctx.src_train, ctx.budget["pretrain_per_class"])
    novel = ctx.cap(ctx.tgt_test, ctx.budget["test_per_class"])
    n_way = len(ctx.target_classes)
    cands = {
        "simpleshot": create_strategy("simpleshot", **ctx.common(backbone=ctx.backbone)),
        "protonet": create_strategy("protonet", **ctx.common(backbone=ctx.backbone, epochs=b["protonet_epochs"],
                                                             lr=5e-4, n_way=len(ctx.source_classes), k_shot=5,
                                                             episodes_per_epoch=50)),
    }
    scores, spread, times, per_shot = {}, {}, {}, {}
    for name, s in cands.items():
        s.fit(base)
        per_shot[name] = {shots: s.evaluate(novel, n_way=n_way, k_shot=shots, q_queries=15, episodes=b["episodes"],
                                            seed=ctx.seed) for shots in (1, 5)}
        scores[name], spread[name] = per_shot[name][5]["accuracy"], per_shot[name][5]["ci95"]
        times[name] = s.fit_time_
        ctx.record(SITUATION.name, name, s, {"accuracy": scores[name], "shots": per_shot[name]})
    v = decide(scores, spread=spread, cost=times)
    w = per_shot[v.winner]
    reason = (f"{n_way}-way on unseen classes over {b['episodes']} episodes, 5 shots: {v.reason}. {v.winner} reaches "
              f"{w[1]['accuracy']:.1%} ± {w[1]['ci95']:.1%} at 1 shot and {w[5]['accuracy']:.1%} ± "
              f"{w[5]['ci95']:.1%} at 5 shots (95% CI; chance {1 / n_way:.0%})")
    return SITUATION.outcome("5-shot episode accuracy", scores, v, reason, details={"ci95": spread, "time_s": times})


SITUATION = register_situation(Situation(
    name="few-shot",
    question="New classes arrive with 1-5 examples each: prototypes on frozen features, or meta-learning?",
    family="scarce-data", approach="few-shot", run=run,
    candidates={"simpleshot": "few-shot", "protonet": "few-shot"},
    budget={"episodes": 600, "protonet_epochs": 2}, quick={"episodes": 600, "protonet_epochs": 1},
    constraints=lambda b: {"new_class_shots": 5},
))
