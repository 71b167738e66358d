"""Multi-task: related labels for the same images. One shared network, or one network per task?"""
from __future__ import annotations

import copy

import numpy as np

from ..data import ImageDataset
from ..engine.verdict import decide
from ..strategies import create_strategy
from .situation import Outcome, Situation, register_situation


def related_tasks(ds: ImageDataset, dataset: str) -> ImageDataset:
    """Extra label columns of related tasks: Fashion-MNIST's super-category and sleeves; for digits, parity
    and 'has a closed loop' (from the built-in digit attributes)."""
    out = copy.copy(ds)
    if dataset == "fashion-mnist":
        from ..data.fashion_tasks import fashion_task_columns

        cols = fashion_task_columns(ds)
        out.extra = {"category": cols["category"], "sleeves": cols["sleeves"]}
    else:
        from ..data.semantics import digits_semantics

        sem = digits_semantics()
        loop = sem["attributes"][:, sem["attribute_names"].index("closed_loop")] >= 1
        digit = np.array([int(ds.classes[label]) for label in ds.labels])
        out.extra = {"parity": (digit % 2).astype(float), "loop": loop[digit].astype(float)}
    return out


def run(ctx, b) -> Outcome:
    train = related_tasks(ctx.cap(ctx.train, b["per_class"]), ctx.dataset)
    test = related_tasks(ctx.cap(ctx.test, b["per_class"] // 2), ctx.dataset)
    tasks = {k: "classification" for k in ["label", *sorted(train.extra)]}
    mt = create_strategy("multitask", **ctx.common(backbone=ctx.backbone, epochs=ctx.epochs(len(train), scale=b["step_scale"]), lr=1e-3,
                                                   tasks=tasks, weighting="uncertainty"))
    mt.fit(train)
    cmp = mt.compare_single_task(train, test)
    shared, single = b["candidates"]
    scores = {shared: float(np.mean([v["accuracy"] for v in cmp["multi_task"].values()])),
              single: float(np.mean([v["accuracy"] for v in cmp["single_task"].values()]))}
    ctx.record(SITUATION.name, "multitask (uncertainty weighting)", mt, {"accuracy": scores[shared], **cmp})
    v = decide(scores, cost={shared: 1, single: len(tasks)}, cost_unit="network(s)")
    reason = (f"over the tasks {', '.join(tasks)} (one seed): {v.reason}; multi-task gain Delta_m = "
              f"{cmp['delta_m']:+.1f}%")
    return SITUATION.outcome("mean task accuracy", scores, v, reason, details={"delta_m": cmp["delta_m"]})


SITUATION = register_situation(Situation(
    name="multi-task",
    question="Related labels for the same images: one shared network, or one network per task?",
    family="many-tasks", approach="multi-task", run=run,
    candidates={"one shared network": "multi-task", "one network per task": "fine-tuning"},
    # step_scale: the fraction of the shared min_steps each network trains for
    budget={"per_class": 200, "step_scale": 0.6}, quick={"per_class": 60, "step_scale": 0.5},
    constraints=lambda b: {"labels_per_class": b["per_class"], "tasks": "together"},
))
