"""Robustness: someone may perturb the inputs on purpose. Does adversarial fine-tuning pay for itself?"""
from __future__ import annotations

from ..engine.verdict import decide
from ..strategies import create_strategy
from ..strategies.domain.adversarial import robustness
from ..strategies.reuse.recipe import PLAIN_RECIPE
from .situation import Outcome, Situation, register_situation

THREAT = {"norm": "linf", "eps": 8 / 255, "steps": 10, "restarts": 1}


def run(ctx, b) -> Outcome:
    train = ctx.cap(ctx.tgt_train, b["train_per_class"])
    test = ctx.cap(ctx.tgt_test, max(1, b["eval_images"] // len(ctx.target_classes)))
    epochs = ctx.epochs(len(train), scale=b["step_scale"])  # of the shared min_steps
    cands = {
        # the same schedule as the adversarial candidate (one rate, no probe phase): only the attack differs
        "finetune": create_strategy("finetune", **ctx.common(backbone=ctx.backbone, epochs=epochs, lr=1e-3,
                                                             **PLAIN_RECIPE)),
        "adversarial finetune (PGD)": create_strategy("adversarial-finetune", **ctx.common(
            backbone=ctx.backbone, epochs=epochs, lr=1e-3, eps=8 / 255, steps=5)),
    }
    scores, clean, times = {}, {}, {}
    for name, s in cands.items():
        s.fit(train)
        r = robustness(s, test, THREAT)
        scores[name], clean[name], times[name] = r["robust_accuracy"], r["clean_accuracy"], s.fit_time_
        ctx.record(SITUATION.name, name, s, {"accuracy": r["clean_accuracy"], **r})
    v = decide(scores, cost=times)
    adv = "adversarial finetune (PGD)"
    reason = (f"under PGD-10 (L-inf, eps=8/255): {v.reason}; clean accuracy {clean[adv]:.1%} with adversarial "
              f"training against {clean['finetune']:.1%} without, at {times[adv] / times['finetune']:.1f}x the "
              f"training time")
    return SITUATION.outcome("PGD-10 robust accuracy", scores, v, reason,
                             details={"clean_accuracy": clean, "threat_model": THREAT, "time_s": times})


SITUATION = register_situation(Situation(
    name="robustness",
    question="Someone may perturb the inputs on purpose: does adversarial fine-tuning pay for itself?",
    family="domain-shift", approach="adversarial-training", run=run,
    candidates={"finetune": "fine-tuning", "adversarial finetune (PGD)": "adversarial-training"},
    # step_scale: the fraction of the shared min_steps each candidate trains for (the PGD candidate costs ~5x)
    budget={"train_per_class": 200, "eval_images": 300, "step_scale": 0.6},
    quick={"train_per_class": 40, "eval_images": 100, "step_scale": 0.5},
    constraints=lambda b: {"labels_per_class": b["train_per_class"], "robustness": True},
))
