"""Limited labels: a pre-trained backbone and a few labelled images per class. Fine-tune or extract features?"""
from __future__ import annotations

import time

from ..engine.verdict import decide
from ..strategies import create_strategy
from .situation import Outcome, Situation, register_situation


def run(ctx, b) -> Outcome:
    k = b["labels_per_class"]
    train = ctx.cap(ctx.tgt_train, k)
    epochs = ctx.epochs(len(train), 32)
    cands = {
        "features (logistic regression)": create_strategy("features", backbone=ctx.backbone, classifier="logreg",
                                                          seed=ctx.seed, progress=False),
        "finetune": create_strategy("finetune", **ctx.common(backbone=ctx.backbone, epochs=epochs, lr=1e-3,
                                                             batch_size=32)),
        "progressive unfreezing": create_strategy("freeze", **ctx.common(
            backbone=ctx.backbone, epochs=epochs, lr=1e-3, batch_size=32, unfreeze_every=max(1, epochs // 5))),
        "finetune from scratch": create_strategy("finetune", **ctx.common(
            backbone=ctx.budget["arch"], pretrained=False, epochs=epochs, lr=3e-3, batch_size=32)),
    }
    scores, times = {}, {}
    for name, s in cands.items():
        t0 = time.perf_counter()
        m = s.fit(train).evaluate(ctx.tgt_test)
        times[name] = time.perf_counter() - t0
        scores[name] = m["accuracy"]
        ctx.record(SITUATION.name, name, s, m, labels_per_class=k, time_s=times[name])
    v = decide(scores, cost=times)
    pre = {n: scores[n] for n in scores if SITUATION.candidates[n] is not None}
    best_pre = max(pre, key=pre.get)
    scratch = decide({best_pre: scores[best_pre], "from scratch": scores["finetune from scratch"]})
    transfer = ("the pre-trained backbone adds nothing measurable at this size" if scratch.is_tie else
                f"the pre-trained backbone is worth {100 * (scores[best_pre] - scores['finetune from scratch']):+.1f} "
                f"points over training from scratch")
    reason = f"{v.reason}. With {k} labels per class {transfer}"
    return Outcome(SITUATION.name, SITUATION.question, "accuracy", scores, v.winner, reason, tied=v.tied,
                   details={"time_s": times})


SITUATION = register_situation(Situation(
    name="limited-labels",
    question="An ImageNet-style model and a few labelled images per class: fine-tune or extract features?",
    family="reuse-weights", approach="feature-extraction", run=run,
    candidates={"features (logistic regression)": "feature-extraction", "finetune": "fine-tuning",
                "progressive unfreezing": "fine-tuning", "finetune from scratch": None},
    budget={"labels_per_class": 20}, quick={"labels_per_class": 10},
    constraints=lambda b: {"labels_per_class": b["labels_per_class"]},
))
