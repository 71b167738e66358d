"""Few-shot: new classes arrive with 1-5 examples each. Meta-learn on episodes, or nearest centroids on the
features of a plain classifier?

On Omniglot (Lake et al. 2015), both candidates train the same small CNN from scratch on the characters of
``background_small1`` (rotations as new classes, Vinyals et al. 2016), seeing the same number of training images:
ProtoNet (Snell et al. 2017) on 20-way episodes, SimpleShot (Wang et al. 2019) by plain classification. They are
tested on the characters of the ``background_small2`` alphabets that small1 does not hold (Greek and Latin are in
both), in 5- and 20-way episodes with 1 and 5 shots, mean and 95% CI. Without Omniglot it falls back to the
built-in data's target half and the source-pre-trained CNN, and says so.
"""
from __future__ import annotations

import time

from ..data import class_split, restrict_classes
from ..data.real.omniglot import with_rotations
from ..engine.verdict import decide
from ..strategies import create_strategy
from ..strategies.scarce.episodic import train_on_base
from .situation import Outcome, Situation, register_situation

SHOTS, QUERIES = (1, 5), 15


def omniglot(ctx, b):
    """(base, novel, candidates' settings, data description) on Omniglot, or None and why it is missing."""
    sets, why = ctx.real("omniglot", ("background_small1", "background_small2"), imagenet=None,
                         image_size=b["size"], invert=True)
    if sets is None:
        return None, why
    base, pool = sets
    novel = class_split(pool, [c for c in pool.classes if c.split("/")[0] not in set(base.domains)])[0]
    base = with_rotations(base) if b["rotations"] else base
    images = b["epochs"] * len(base)  # what each candidate sees in training
    way = b["train_way"]
    settings = {
        "protonet": dict(backbone=b["arch"], pretrained=False, n_way=way, k_shot=5, q_queries=5, epochs=1,
                         episodes_per_epoch=max(1, round(images / (way * 10))), lr=1e-3),
        # SimpleShot's backbone is first trained on the base classes by cross-entropy (train_on_base)
        "simpleshot": dict(train_on_base=dict(backbone=b["arch"], pretrained=False, epochs=b["epochs"], lr=2e-3)),
    }
    alphabets = ", ".join(sorted(set(novel.domains)))
    data = (f"Omniglot {b['size']} px: {base.num_classes} training classes from background_small1"
            f"{' (with rotations)' if b['rotations'] else ''}, {b['arch']} from scratch; tested on "
            f"{novel.num_classes} unseen characters ({alphabets})")
    return (base, novel, settings, data), None


def fallback(ctx, b, why):
    """The built-in data: ProtoNet meta-fine-tunes the source-pre-trained CNN; SimpleShot uses it as it is."""
    base, n = ctx.cap(ctx.src_train, ctx.budget["pretrain_per_class"]), len(ctx.source_classes)
    settings = {"protonet": dict(backbone=ctx.backbone, epochs=b["fallback_epochs"], lr=5e-4, n_way=n, k_shot=5,
                                 episodes_per_epoch=50),
                "simpleshot": dict(backbone=ctx.backbone)}
    return base, ctx.tgt_test, settings, f"{ctx.dataset} (fallback: {why})"


def run(ctx, b) -> Outcome:
    real, why = omniglot(ctx, b)
    base, novel, settings, data = real or fallback(ctx, b, why)
    ways = [w for w in (5, 20) if w <= novel.num_classes]
    cells = [(w, k) for w in ways for k in SHOTS]
    results, times, fitted = {}, {}, {}
    for name, kw in settings.items():
        t0, kw = time.perf_counter(), dict(kw)
        if "train_on_base" in kw:
            kw["backbone"] = train_on_base(base, **ctx.common(**kw.pop("train_on_base")))
        pre_s = time.perf_counter() - t0
        s = fitted[name] = create_strategy(name, **ctx.common(**kw)).fit(base)
        results[name] = {f"{w}-way {k}-shot": s.evaluate(novel, n_way=w, k_shot=k, q_queries=QUERIES,
                                                         episodes=b["episodes"], seed=ctx.seed) for w, k in cells}
        times[name] = pre_s + s.fit_time_
        ctx.record(SITUATION.name, name, s, {**results[name][_cell(cells[-2])], "cells": results[name],
                                             "chance": 1 / cells[-2][0]}, dataset=data)
    verdicts = {c: decide({n: r[c]["accuracy"] for n, r in results.items()},
                          spread={n: r[c]["ci95"] for n, r in results.items()}, cost=times) for c in map(_cell, cells)}
    head = _cell(cells[-2])  # the most classes at one shot: Lake's 20-way one-shot on Omniglot
    v = verdicts[head]
    winners = {c: ("tie" if len(x.tied) > 1 else x.winner) for c, x in verdicts.items()}
    cells_text = " vs ".join(results) + ": " + "; ".join(
        f"{c} " + " vs ".join(f"{r[c]['accuracy']:.1%} ± {r[c]['ci95']:.1%}" for r in results.values())
        for c in winners)
    agree = ("the same verdict in every cell" if len(set(winners.values())) == 1 else
             "cells differ: " + ", ".join(f"{c} {w}" for c, w in winners.items()))
    how = ("equal training images" if real else
           "SimpleShot on the pre-trained CNN as it is, ProtoNet meta-fine-tuning it")
    reason = (f"{b['episodes']} episodes of {QUERIES} queries per class, 95% CI; {head}: {v.reason}; {agree} "
              f"({cells_text}). Trained with {how}; one seed")
    # The advisor measures what a practitioner holds: one support set of new classes, on the winner's backbone.
    support = ctx.cap(restrict_classes(novel, range(cells[-1][0])), cells[-1][1])
    return SITUATION.outcome(f"{head} episode accuracy", {n: r[head]["accuracy"] for n, r in results.items()}, v,
                             reason, data=data, evidence=(support, fitted[v.winner].backbone_),
                             spread={n: r[head]["ci95"] for n, r in results.items()},
                             details={"cells": results, "time_s": times})


def _cell(cell) -> str:
    return f"{cell[0]}-way {cell[1]}-shot"


SITUATION = register_situation(Situation(
    name="few-shot",
    question="New classes arrive with 1-5 examples each: meta-learn on episodes, or nearest centroids on a "
             "classifier's features?",
    family="scarce-data", approach="few-shot", run=run,
    candidates={"protonet": "few-shot", "simpleshot": "few-shot"},
    # epochs: passes over the training classes' images, the budget both candidates share
    budget={"episodes": 600, "size": 28, "rotations": True, "epochs": 2, "train_way": 20, "arch": "builtin:small-cnn",
            "fallback_epochs": 2},
    quick={"episodes": 300, "size": 28, "rotations": False, "epochs": 1, "train_way": 20,
           "arch": "builtin:small-cnn", "fallback_epochs": 1},
    constraints=lambda b: {"new_class_shots": 1},
))
