"""Deployment: the best model is too big for the phone. How much of it does a small student keep, and does
distillation add anything over training the student alone? (The teacher is over the budget by premise, so the
verdict is between the two students.)"""
from __future__ import annotations

from ..engine.verdict import decide
from ..strategies import create_strategy
from ..strategies.distill import distillation_report
from ..strategies.finetune import PLAIN_RECIPE
from .situation import Outcome, Situation, register_situation


def run(ctx, b) -> Outcome:
    train = ctx.cap(ctx.tgt_train, b["per_class"])
    # The teacher: every layer at one rate. The default LP-FT recipe's probe phase is a few dozen Adam steps here
    # and underfits this small CNN (28.5% against 87.0% on digits, quick budget; see the closing note of issue 24).
    teacher = create_strategy("finetune", **ctx.common(backbone=ctx.backbone, epochs=ctx.epochs(len(train)),
                                                       lr=1e-3, **PLAIN_RECIPE)).fit(train)
    student = dict(backbone=b["student"], pretrained=False, epochs=ctx.epochs(len(train), scale=3), lr=5e-3)
    scratch = create_strategy("finetune", **ctx.common(**student)).fit(train)
    distilled = create_strategy("distill", **ctx.common(teacher=teacher, **student)).fit(train)
    rep = distillation_report(teacher, distilled, ctx.tgt_test, scratch=scratch)
    rows, summ = rep["rows"], rep["summary"]
    for name, s in (("teacher", teacher), ("student_scratch", scratch), ("student_distilled", distilled)):
        ctx.record(SITUATION.name, name, s, {**rows[name]}, distillation=summ)
    scores = {k: v["accuracy"] for k, v in rows.items()}
    # Does distillation add anything over the student alone? The tie rule; a tie goes to the cheaper training.
    v = decide({k: scores[k] for k in ("student_distilled", "student_scratch")},
               cost={"student_distilled": distilled.fit_time_, "student_scratch": scratch.fit_time_})
    adds = ("Distillation adds nothing measurable over training the student alone" if v.is_tie
            else "Distillation adds to the student" if v.winner == "student_distilled"
            else "The student trained alone is better than the distilled one")
    # How much of the teacher does the small model keep?
    kept = scores[v.winner] / max(scores["teacher"], 1e-12)
    reason = (f"the student has {summ['param_ratio']:.0f}x fewer parameters and runs {summ['speedup_b1']:.1f}x "
              f"faster at batch 1 on CPU; {v.winner} keeps {kept:.1%} of the teacher's accuracy "
              f"({scores[v.winner]:.1%} against {scores['teacher']:.1%}). {adds} (one seed): {v.reason}")
    return Outcome(SITUATION.name, SITUATION.question, "accuracy", scores, v.winner, reason, tied=v.tied,
                   details={**summ, "accuracy_kept": kept})


SITUATION = register_situation(Situation(
    name="deployment",
    question="The best model is too big for the phone: how much does a distilled student keep?",
    family="efficiency", approach="distillation", run=run,
    candidates={"teacher": "fine-tuning", "student_scratch": "fine-tuning", "student_distilled": "distillation"},
    budget={"per_class": 300, "student": "builtin:micro-cnn"}, quick={"per_class": 60, "student": "builtin:micro-cnn"},
    constraints=lambda b: {"labels_per_class": b["per_class"], "max_params": 20_000},
))
