"""Many tasks on Fashion-MNIST: multi-task vs single-task (Delta_m), and continual learning accuracy matrices
of progressive networks, sequential fine-tuning and EWC over 5 tasks of 2 classes.

Prints one JSON object. Reproduce (the figures in benchmarks/sections/tasks-and-distillation.md; 2 shared CPU cores):
    .venv/bin/python benchmarks/bench_tasks.py --mt-train 2000 --mt-epochs 2 --cl-per-class 200 --cl-epochs 2 --n-test 2000
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from transferkit.data import k_per_class, load_fashion_mnist
from transferkit.data import task_sequence
from transferkit.data.fashion_tasks import add_fashion_tasks
from transferkit.strategies.tasks.ewc import EWC
from transferkit.strategies.tasks.protocol import compare_continual
from transferkit.strategies.tasks.sequential import SequentialFineTune
from transferkit.strategies.tasks.multitask import MultiTask
from transferkit.strategies.tasks.progressive import ProgressiveNetworks


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mt-train", type=int, default=6000)
    ap.add_argument("--mt-epochs", type=int, default=3)
    ap.add_argument("--cl-per-class", type=int, default=500)
    ap.add_argument("--cl-epochs", type=int, default=2)
    ap.add_argument("--n-test", type=int, default=5000)
    ap.add_argument("--backbone", default="builtin:small-cnn")
    ap.add_argument("--ewc-lambda", type=float, default=100.0)
    ap.add_argument("--weightings", default="equal,uncertainty,gradnorm")
    ap.add_argument("--skip", default="", help="comma list of parts to skip: mt,cl")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    full_train = load_fashion_mnist("train", download=False)
    test = k_per_class(load_fashion_mnist("test", download=False), a.n_test // 10, seed=a.seed)
    common = dict(backbone=a.backbone, pretrained=False, input_size=28, batch_size=64, lr=3e-3, seed=a.seed, progress=False)
    out, t0 = {}, time.perf_counter()
    skip = set(a.skip.split(","))
    if "mt" not in skip:
        train = add_fashion_tasks(k_per_class(full_train, a.mt_train // 10, seed=a.seed))
        mt_test = add_fashion_tasks(test)
        out["multitask"] = {}
        single = None
        for w in a.weightings.split(","):
            mt = MultiTask(tasks=["label", "category", "sleeves", "ink"], weighting=w, epochs=a.mt_epochs, **common).fit(train)
            if single is None:
                rep = mt.compare_single_task(train, mt_test)
                single = rep["single_task"]
            else:
                from transferkit.strategies.tasks.weighting import multitask_gain
                multi = mt.evaluate(mt_test)["tasks"]
                key = {"label": "accuracy", "category": "accuracy", "sleeves": "accuracy", "ink": "mae"}
                rep = {"multi_task": multi, "single_task": single, "metric": key, "task_weights": mt.task_weights_,
                       "delta_m": multitask_gain({n: multi[n][k] for n, k in key.items()},
                                                 {n: single[n][k] for n, k in key.items()},
                                                 {n: k == "mae" for n, k in key.items()}),
                       "fit_s": {"multi_task": mt.fit_time_}}
            out["multitask"][w] = rep
    if "cl" not in skip:
        tasks = task_sequence(k_per_class(full_train, a.cl_per_class, seed=a.seed), 5)
        tests = task_sequence(test, 5)
        cl = dict(epochs=a.cl_epochs, **common)
        out["continual"] = compare_continual(
            {"progressive": ProgressiveNetworks(**cl), "sequential_finetune": SequentialFineTune(**cl),
             "ewc": EWC(ewc_lambda=a.ewc_lambda, **cl)},
            tasks, tests, reference=SequentialFineTune(**cl))
        out["continual"]["tasks"] = [t.classes for t in tasks]
    out["config"] = {**vars(a), "total_s": time.perf_counter() - t0, "torch": torch.__version__}
    print(json.dumps(out, indent=1, default=float))


if __name__ == "__main__":
    main()
