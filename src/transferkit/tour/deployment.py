"""Deployment: the best model is too big for the phone. How much does a distilled student keep?"""
from __future__ import annotations

from ..strategies import create_strategy
from ..strategies.distill import distillation_report
from .situation import Outcome, Situation, register_situation


def run(ctx, b) -> Outcome:
    train = ctx.cap(ctx.tgt_train, b["per_class"])
    teacher = create_strategy("finetune", **ctx.common(backbone=ctx.backbone, epochs=ctx.epochs(len(train)),
                                                       lr=1e-3)).fit(train)
    student = dict(backbone=b["student"], pretrained=False, epochs=ctx.epochs(len(train), scale=3), lr=5e-3)
    scratch = create_strategy("finetune", **ctx.common(**student)).fit(train)
    distilled = create_strategy("distill", **ctx.common(teacher=teacher, **student)).fit(train)
    rep = distillation_report(teacher, distilled, ctx.tgt_test, scratch=scratch)
    rows, summ = rep["rows"], rep["summary"]
    for name, s in (("teacher", teacher), ("student_scratch", scratch), ("student_distilled", distilled)):
        ctx.record(SITUATION.name, name, s, {**rows[name]}, distillation=summ)
    scores = {k: v["accuracy"] for k, v in rows.items()}
    best_student = max(("student_distilled", "student_scratch"), key=scores.get)
    winner = best_student if scores[best_student] >= 0.95 * scores["teacher"] else "teacher"
    reason = (f"the distilled student has {summ['param_ratio']:.0f}x fewer parameters, runs {summ['speedup_b1']:.1f}x "
              f"faster at batch 1 on CPU and keeps {summ['accuracy_retained']:.1%} of the teacher's accuracy "
              f"({summ.get('distillation_gain', 0):+.1%} over the same student trained without the teacher)")
    return Outcome(SITUATION.name, SITUATION.question, "accuracy", scores, winner, reason, details=summ)


SITUATION = register_situation(Situation(
    name="deployment",
    question="The best model is too big for the phone: how much does a distilled student keep?",
    family="efficiency", approach="distillation", run=run,
    candidates=("teacher", "student_scratch", "student_distilled"),
    budget={"per_class": 300, "student": "builtin:micro-cnn"}, quick={"per_class": 60, "student": "builtin:micro-cnn"},
    constraints=lambda b: {"labels_per_class": b["per_class"], "max_params": 20_000},
))
