"""Deployment: the best model is too big for the phone. How much of it does a small student keep, and does
distillation add anything over training the student alone? (The teacher is over the budget by premise, so the
verdict is between the two students.)

On the photos, the teacher is the fine-tuned Lite0 of the limited-labels situation (trained here when that
situation did not run) and the student a 0.14 M-parameter MobileNet-style CNN from random weights; batch-1 CPU
latency is measured in PyTorch and in ONNX Runtime. Without the photos or the weights it falls back to the
built-in data and says so.
"""
from __future__ import annotations

import tempfile

from ..engine.verdict import decide
from ..strategies import create_strategy
from ..strategies.efficiency.report import distillation_report
from ..strategies.reuse.recipe import PLAIN_RECIPE
from .situation import Outcome, Situation, register_situation


def setup(ctx, b):
    """(train, test, teacher, its backbone spec, student settings, what the data is) on the photos, or on the
    built-in fallback; records the parameter budget the advisor is told (the student must fit it)."""
    photos, spec = ctx.real("hymenoptera")
    if photos is None:
        train = ctx.cap(ctx.tgt_train, b["per_class"])
        # The teacher: every layer at one rate. The default LP-FT recipe's probe phase is a few dozen Adam steps
        # here and underfits this small CNN (28.5% against 87.0% on digits, quick budget; issue 24's note).
        teacher = create_strategy("finetune", **ctx.common(backbone=ctx.backbone, epochs=ctx.epochs(len(train)),
                                                           lr=1e-3, **PLAIN_RECIPE)).fit(train)
        student = dict(backbone=b["student"], pretrained=False, epochs=ctx.epochs(len(train), scale=3), lr=5e-3)
        b["max_params"] = 20_000
        return train, ctx.tgt_test, teacher, ctx.backbone, student, f"{ctx.dataset} (fallback: {spec})"
    train, test = photos
    train = ctx.cap(train, b["photo_per_class"]) if b["photo_per_class"] else train
    teacher = ctx.shared.get("photo finetune") or create_strategy("finetune", **ctx.common(
        backbone=spec, input_size=b["size"])).fit(train)
    # The student sees the photos at its own, smaller size (the teacher's logits come from its own transform).
    student = dict(backbone=b["photo_student"], pretrained=False, input_size=b["student_size"], augment="none",
                   epochs=b["photo_epochs"], lr=3e-3, batch_size=32)
    b["max_params"] = 200_000
    return train, test, teacher, spec, student, f"hymenoptera photos, teacher {spec} fine-tuned at {b['size']} px"


def onnx_latency(strategies: dict) -> dict:
    """Batch-1 CPU latency (ms, one thread) of each model exported to ONNX and run in ONNX Runtime."""
    from ..export import data_config_of, export_onnx, measure_onnx_latency

    out = {}
    with tempfile.TemporaryDirectory() as d:
        for name, s in strategies.items():
            path = export_onnx(s, f"{d}/{name}.onnx")["path"]
            out[name] = measure_onnx_latency(path, tuple(data_config_of(s)["input_size"]), 1)
    return out


def run(ctx, b) -> Outcome:
    train, test, teacher, spec, student, data = setup(ctx, b)
    scratch = create_strategy("finetune", **ctx.common(**student)).fit(train)
    distilled = create_strategy("distill", **ctx.common(teacher=teacher, **student)).fit(train)
    rep = distillation_report(teacher, distilled, test, scratch=scratch, batch_sizes=(1,))
    rows, summ = rep["rows"], rep["summary"]
    models = {"teacher": teacher, "student_scratch": scratch, "student_distilled": distilled}
    for name, ms in onnx_latency(models).items():
        rows[name]["onnx_latency_ms_b1"] = ms
    for name, s in models.items():
        ctx.record(SITUATION.name, name, s, {**rows[name]}, dataset=data, distillation=summ)
    scores = {k: v["accuracy"] for k, v in rows.items()}
    # Does distillation add anything over the student alone? The tie rule; a tie goes to the cheaper training.
    v = decide({k: scores[k] for k in ("student_distilled", "student_scratch")},
               cost={"student_distilled": distilled.fit_time_, "student_scratch": scratch.fit_time_})
    adds = ("Distillation adds nothing measurable over training the student alone" if v.is_tie
            else "Distillation adds to the student" if v.winner == "student_distilled"
            else "The student trained alone is better than the distilled one")
    # How much of the teacher does the small model keep?
    kept = scores[v.winner] / max(scores["teacher"], 1e-12)
    t, s = rows["teacher"], rows[v.winner]
    reason = (f"the student has {summ['param_ratio']:.0f}x fewer parameters ({s['params']:,} against "
              f"{t['params']:,}); at batch 1 on one CPU thread it takes {s['latency_ms_b1']:.1f} ms in PyTorch and "
              f"{s['onnx_latency_ms_b1']:.1f} ms in ONNX Runtime against the teacher's {t['latency_ms_b1']:.1f} / "
              f"{t['onnx_latency_ms_b1']:.1f} ms; {v.winner} keeps {kept:.1%} of the teacher's accuracy "
              f"({scores[v.winner]:.1%} against {scores['teacher']:.1%}). {adds} (one seed): {v.reason}")
    return SITUATION.outcome("accuracy", scores, v, reason, data=data, evidence=(train, spec),
                             details={**summ, "accuracy_kept": kept, "rows": rows})


SITUATION = register_situation(Situation(
    name="deployment",
    question="The best model is too big for the phone: how much does a distilled student keep?",
    family="efficiency", approach="distillation", run=run,
    candidates={"teacher": "fine-tuning", "student_scratch": "fine-tuning", "student_distilled": "distillation"},
    budget={"per_class": 300, "student": "builtin:micro-cnn", "photo_student": "builtin:mobile-cnn", "size": 160,
            "student_size": 112, "photo_epochs": 20, "photo_per_class": None},
    quick={"per_class": 60, "student": "builtin:micro-cnn", "photo_student": "builtin:mobile-cnn", "size": 128,
           "student_size": 96, "photo_epochs": 8, "photo_per_class": 20},
    constraints=lambda b: {"labels_per_class": b["per_class"], "max_params": b.get("max_params", 20_000)},
))
