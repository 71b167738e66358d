"""Continual learning: tasks arrive one after another. How much does each strategy forget?"""
from __future__ import annotations

from ..data import task_sequence
from ..engine.verdict import decide
from ..strategies import create_strategy
from ..strategies.tasks.protocol import compare_continual
from .situation import Outcome, Situation, register_situation


def run(ctx, b) -> Outcome:
    n_tasks = ctx.train.num_classes // 2
    tasks = task_sequence(ctx.cap(ctx.train, b["per_class"]), n_tasks)
    evals = task_sequence(ctx.cap(ctx.test, b["per_class"] // 2), n_tasks)
    epochs = ctx.epochs(len(tasks[0]), scale=b["step_scale"])  # of the shared min_steps, per task
    strategies = {name: create_strategy(name, **ctx.common(backbone=ctx.backbone, epochs=epochs, lr=1e-3))
                  for name in b["candidates"]}
    res = compare_continual(strategies, tasks, evals)
    scores, forgetting, params = {}, {}, {}
    for name, s in strategies.items():
        met = res[name]["metrics"]
        scores[name], forgetting[name], params[name] = met["average_accuracy"], met["forgetting"], s.n_params_
        ctx.record(SITUATION.name, name, s, {"accuracy": met["average_accuracy"], **met,
                                             "accuracy_matrix": res[name]["accuracy_matrix"]})
    v = decide(scores, cost=params, cost_unit="parameters")
    reason = (f"average accuracy over all {n_tasks} tasks after the last one (one seed): {v.reason}; {v.winner} "
              f"forgets {forgetting[v.winner]:.1%}, sequential fine-tuning "
              f"{forgetting.get('sequential-finetune', float('nan')):.1%}")
    return SITUATION.outcome("average accuracy after the last task", scores, v, reason,
                             details={"forgetting": forgetting, "params": params})


SITUATION = register_situation(Situation(
    name="continual",
    question="Tasks arrive one after another: how much does each strategy forget?",
    family="many-tasks", approach="progressive", run=run,
    candidates={"sequential-finetune": "fine-tuning", "ewc": "progressive", "progressive": "progressive"},
    # step_scale: each task trains for this fraction of the shared min_steps (0.3: 60 steps of 5 tasks x 3 strategies)
    budget={"per_class": 150, "step_scale": 0.3}, quick={"per_class": 40, "step_scale": 0.2},
    constraints=lambda b: {"labels_per_class": b["per_class"], "tasks": "sequential"},
))
