"""Domain adaptation benchmark; prints JSON.

1. Step time: one training step (the strategy's training_step + backward + optimiser step, as the one Trainer
   runs it) of each DA method against a source-only step, in CPU time. Target: DA <= 1.5x source-only. A DA step
   forwards the source *and* the target batch, so it is also reported at equal images per step (the DA batch
   halved).
2. Target accuracy on Fashion-MNIST -> Fashion-MNIST 'night' and 'texture' (built-in shifts): source-only, DANN,
   MMD, CORAL, CDAN (last epoch and the epoch chosen by the unsupervised IM validator), and the oracle
   (fine-tuned on the *labelled* target training split). Source = a stratified subset of the train split;
   target = a disjoint subset, shifted; target test = the shifted test split subset.

    python benchmarks/bench_domain.py [--n-source 3000] [--n-target 3000] [--n-test 2000] [--epochs 3]
                                      [--size 16] [--shifts night,texture] [--skip-accuracy]
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from transferkit.data import k_per_class, load_fashion_mnist, stratified_split
from transferkit.data.shifts import make_shift
from transferkit.strategies import create_strategy
from transferkit.strategies.reuse.recipe import PLAIN_RECIPE
from transferkit.utils import environment

METHODS = ["source-only", "dann", "mmd", "coral", "cdan"]


def step_times(train, target, size, batch, steps):
    """CPU time (process_time: robust to other load on a shared machine) of ``steps`` calls of the strategy's
    training step + backward + optimiser step, the work the one Trainer does per batch, on prepared batches."""
    import itertools

    out, base = {}, None
    for method in METHODS:
        for half in ([False, True] if method != "source-only" else [False]):
            bs = batch // 2 if half else batch
            n = bs * (steps + 1)
            s = create_strategy(method, backbone="builtin:small-cnn", epochs=1, batch_size=bs, lr=1e-3, input_size=size,
                                progress=False, diagnostics=False, selection="last", selection_samples=16, seed=0)
            src, tgt = train.subset(np.arange(n)), target.subset(np.arange(n))
            s.fit(src, target=tgt)
            batches = list(itertools.islice(iter(s.train_loader(src, target=tgt)), steps + 1))
            opt = s.configure_optimizer()
            s.module.train()

            def run(bs_):
                out_ = s.training_step(bs_)
                out_["loss"].backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
            run(batches[0])  # warm-up
            t0 = time.process_time()
            for b in batches[1:]:
                run(b)
            t = (time.process_time() - t0) / steps
            key = method + (" (half batch each)" if half else "")
            out[key] = {"step_cpu_ms": round(1000 * t, 2), "batch_source": bs,
                        "batch_target": 0 if method == "source-only" else bs}
            if method == "source-only":
                base = t
            out[key]["ratio_vs_source_only"] = round(t / base, 3)
    return out


def accuracies(src, tgt_train, tgt_test, args, shift):
    common = dict(backbone="builtin:small-cnn", epochs=args.epochs, batch_size=64, lr=2e-3, input_size=args.size,
                  progress=False, seed=0)
    rows = {}
    for method in METHODS:
        t = time.perf_counter()
        s = create_strategy(method, diagnostics=method in ("source-only", "dann"), selection="im", **common)
        s.fit(src, target=tgt_train.unlabelled(), target_test=tgt_test)
        rep = s.selection_report()
        rows[method] = {"target_acc_selected_by_im": round(rep["oracle_target_accuracy_selected"], 4),
                        "target_acc_last_epoch": round(rep["oracle_target_accuracy_last_epoch"], 4),
                        "target_acc_best_epoch_oracle": round(rep["oracle_target_accuracy_best_epoch"], 4),
                        "source_acc": round(s.evaluate(src.subset(np.arange(min(1000, len(src)))))["accuracy"], 4),
                        "fit_s": round(time.perf_counter() - t, 1), **{k: round(v, 3) for k, v in s.shift_.items()}}
        print(json.dumps({"shift": shift, method: rows[method]}), flush=True)
    t = time.perf_counter()
    oracle = create_strategy("finetune", **PLAIN_RECIPE, **common).fit(tgt_train)
    rows["oracle (labelled target)"] = {"target_acc_last_epoch": round(oracle.evaluate(tgt_test)["accuracy"], 4),
                                        "fit_s": round(time.perf_counter() - t, 1)}
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-source", type=int, default=3000)
    ap.add_argument("--n-target", type=int, default=3000)
    ap.add_argument("--n-test", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--size", type=int, default=16)
    ap.add_argument("--shifts", default="night,texture")
    ap.add_argument("--step-batch", type=int, default=64)
    ap.add_argument("--step-steps", type=int, default=8)
    ap.add_argument("--skip-accuracy", action="store_true")
    args = ap.parse_args()
    train, test = load_fashion_mnist("train"), load_fashion_mnist("test")
    src, rest = stratified_split(train, 1 - args.n_source / len(train), seed=0)
    tgt_pool = k_per_class(rest, args.n_target // 10, seed=1)
    test = k_per_class(test, args.n_test // 10, seed=0)
    out = {"benchmark": "domain_adaptation", "config": vars(args),
           "environment": {k: environment()[k] for k in ("torch", "cpu_count", "cuda")}}
    night_pool = make_shift(tgt_pool, "night", seed=0)
    out["step_time"] = {"input": args.size, "backbone": "builtin:small-cnn",
                        "rows": step_times(src, night_pool, args.size, args.step_batch, args.step_steps)}
    print(json.dumps({"step_time": out["step_time"]}), flush=True)
    if not args.skip_accuracy:
        out["target_accuracy"] = {}
        for shift in args.shifts.split(","):
            tgt = make_shift(tgt_pool, shift, seed=0)
            tt = make_shift(test, shift, seed=1)
            out["target_accuracy"][shift] = accuracies(src, tgt, tt, args, shift)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
