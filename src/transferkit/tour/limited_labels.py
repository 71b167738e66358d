"""Limited labels: a pre-trained backbone and a few labelled images per class. Fine-tune or extract features?"""
from __future__ import annotations

import time

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
    winner = max(scores, key=scores.get)
    best_pre = max((n for n in scores if n != "finetune from scratch"), key=scores.get)
    gain = scores[best_pre] - scores["finetune from scratch"]
    verdict = ("the pre-trained features carry over" if gain >= 0.02 else
               "at this data size the pre-trained features add little")
    fast = min(times, key=times.get)
    reason = (f"with {k} labels per class, the best use of the pre-trained backbone ({best_pre}, "
              f"{scores[best_pre]:.1%}) is {gain:+.1%} against training from scratch: {verdict}; "
              f"{fast} is the fastest ({times[fast]:.1f} s)")
    return Outcome(SITUATION.name, SITUATION.question, "accuracy", scores, winner, reason, details={"time_s": times})


SITUATION = register_situation(Situation(
    name="limited-labels",
    question="An ImageNet-style model and a few labelled images per class: fine-tune or extract features?",
    family="reuse-weights", approach="feature-extraction", run=run,
    candidates=("features (logistic regression)", "finetune", "progressive unfreezing", "finetune from scratch"),
    budget={"labels_per_class": 20}, quick={"labels_per_class": 10},
    constraints=lambda b: {"labels_per_class": b["labels_per_class"]},
))
