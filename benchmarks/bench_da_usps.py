"""Domain adaptation on real handwritten digits: MNIST <-> USPS (TLlib's digits table) and scikit-learn digits
<-> USPS (issues 12 and 28).

MNIST (28x28, the official 10,000 test digits: the 60k training file is not available offline), USPS (16x16;
7,291 train / 2,007 test) and scikit-learn ``digits`` (8x8, 1,797) are scanned differently; each pair is
resampled to one input size (``--size``; TLlib resizes digits to 28 px) by
:func:`transferkit.data.pairs.paired_domains`. Labelled source, unlabelled target:

* MNIST -> USPS: source = the 10,000 MNIST digits; target (unlabelled) = the 7,291 USPS train images; target
  test = the 2,007 USPS test images (TLlib: source = MNIST's 60k train set, the same USPS sides).
* USPS -> MNIST: source = the 7,291 USPS train images; the 10,000 MNIST digits split 50/50 (stratified, seed 0)
  into the unlabelled target and the target test (TLlib: target = MNIST train, test = MNIST test).
* digits -> USPS: source = all 1,797 digits; target = ``--n-usps`` USPS train images (stratified, seed 0);
  target test = the 2,007 USPS test images.
* USPS -> digits: source = the same ``--n-usps`` USPS images; digits split 50/50 into target (899) and test (898).

Methods: source-only, DANN, MMD (DAN), CORAL, CDAN+E, the strategies of ``transferkit.strategies.domain``.
``--recipe tllib`` follows TLlib's digit scripts (``examples/domain_adaptation/image_classification/*.sh``):
LeNet trained from scratch, 28 px, batch 128, SGD (momentum 0.9, nesterov here), weight decay 1e-3, a 256-d
Linear-BN-ReLU bottleneck, lr 0.01 from MNIST and 0.1 from USPS; the budget is ``--steps`` optimiser steps
(TLlib: 20 epochs x 2,500 = 50,000 steps), rounded up to whole passes over the source, with a cosine schedule
(TLlib: lr0 (1 + 0.001 t)^-0.75). Each fit logs per epoch the unsupervised validators on the target (IM, SND,
mean entropy) and the target-test accuracy (evaluation only); model selection over epochs is read from that
history: IM (max), SND (max), entropy (min), last epoch, and the oracle epoch chosen on target labels. The
ceiling is a target-trained oracle (``finetune`` on the *labelled* target images, same budget). "Gap closed" =
(method - source-only) / (oracle - source-only), each method and source-only under the same selection rule,
on the seed means. Seeds change initialisation and batch order; the data subsets stay fixed (seed 0).

    python benchmarks/bench_da_usps.py --recipe tllib --steps 3000 --directions mnist->usps,usps->mnist \
        [--threads 1] [--seeds 0,1,2] [--markdown] [--save FILE]
    python benchmarks/bench_da_usps.py [--epochs 6] [--size 16] [--n-usps 1800]     # issue 12's first table
    python benchmarks/bench_da_usps.py --report benchmarks/results/da-*.json           # one table from saved runs
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from transferkit.strategies.reuse.recipe import PLAIN_RECIPE

METHODS = ["source-only", "dann", "mmd", "coral", "cdan"]
LABELS = {"source-only": "source-only", "dann": "DANN", "mmd": "MMD (DAN)", "coral": "Deep CORAL", "cdan": "CDAN+E"}
SELECTORS = {"im": ("target_im", "max"), "snd": ("target_snd", "max"), "entropy": ("target_entropy", "min"),
             "last": (None, None), "oracle": ("oracle_target_accuracy", "max")}
# TLlib's digits table (its benchmark page; LeNet, 50,000 steps, MNIST's 60k training set), by direction and method
TLLIB_TABLE = {"mnist->usps": {"source-only": 82.1, "dann": 91.7, "cdan": 96.0},
               "usps->mnist": {"source-only": 74.6, "dann": 95.2, "cdan": 97.7}}
ANCHORS = {
    **{f"TLlib {d} (LeNet, 50k steps)": row for d, row in TLLIB_TABLE.items()},
    "Ganin 2015 MNIST->MNIST-M": {"source_only": 52.3, "dann": 76.7, "target_trained": 95.9, "dann_gap_closed": 0.56},
    "ADDA (Tzeng 2017) MNIST->USPS": {"source_only": 75.2, "dann": 77.1},
    "ADDA (Tzeng 2017) USPS->MNIST": {"source_only": 57.1, "dann": 73.0},
}


TLLIB = {"backbone": "builtin:lenet", "size": 28, "batch_size": 128, "optimizer": "sgd", "weight_decay": 1e-3,
         "bottleneck_dim": 256, "lr": {"mnist->usps": 0.01, "usps->mnist": 0.1, "digits->usps": 0.01,
                                       "usps->digits": 0.1}}


def load_pairs(size: int, n_usps: int, directions: list[str]):
    """{direction: (source, target with labels, target_test)} at ``size`` px, and where the data came from. The
    target's labels serve the target-trained oracle only; the adaptation methods get ``target.unlabelled()``."""
    from transferkit.data import load_dataset, stratified_split
    from transferkit.data.domains import align_classes
    from transferkit.data.pairs import paired_domains, resample

    usps_train, usps_test = load_dataset("usps:train"), load_dataset("usps:test")
    triples = {}
    if {"digits->usps", "usps->digits"} & set(directions):
        digits = load_dataset("digits")
        usps, _ = stratified_split(usps_train, 1 - n_usps / len(usps_train), seed=0)
        dig_tgt, dig_test = stratified_split(digits, 0.5, seed=0)
        triples.update({"digits->usps": (digits, usps, usps_test), "usps->digits": (usps, dig_tgt, dig_test)})
    if {"mnist->usps", "usps->mnist"} & set(directions):
        mnist = load_dataset("mnist:test")
        mnist_tgt, mnist_test = stratified_split(mnist, 0.5, seed=0)
        triples.update({"mnist->usps": (mnist, usps_train, usps_test),
                        "usps->mnist": (usps_train, mnist_tgt, mnist_test)})
    out = {}
    for name in directions:
        src, tgt, test = triples[name]
        s, t = paired_domains(src, tgt, size=size)
        out[name] = (s, t, resample(align_classes(s, test, role="target test"), (size, size)))
    return out, ("transferkit.data: load_dataset('digits'), load_dataset('usps:train'/'usps:test'), "
                 "load_dataset('mnist:test'), paired_domains")


def pick(history: list, selector: str) -> dict:
    """The epoch a selection rule keeps and its target-test accuracy."""
    monitor, mode = SELECTORS[selector]
    if monitor is None:
        best = len(history) - 1
    else:
        vals = np.array([h.get(monitor, np.nan) for h in history], dtype=float)
        best = int(np.nanargmax(vals) if mode == "max" else np.nanargmin(vals))
    return {"epoch": best + 1, "acc": float(history[best]["oracle_target_accuracy"])}


def run_direction(src, tgt_labelled, test, common: dict, seeds: list[int], da_only: dict) -> dict:
    from transferkit.strategies import create_strategy

    tgt = tgt_labelled.unlabelled()

    runs = {m: [] for m in METHODS}
    runs["oracle (target-trained)"] = []
    for seed in seeds:
        for m in METHODS:
            t0 = time.perf_counter()
            s = create_strategy(m, diagnostics=False, selection="last", seed=seed, **da_only, **common)
            s.fit(src, target=tgt, target_test=test)
            hist = [{k: h[k] for k in ("target_im", "target_snd", "target_entropy", "oracle_target_accuracy")}
                    for h in s.history_]
            rec = {"seed": seed, "fit_s": round(time.perf_counter() - t0, 1),
                   "selected": {k: pick(hist, k) for k in SELECTORS}, "history": hist}
            runs[m].append(rec)
            print(json.dumps({"method": m, "seed": seed, "fit_s": rec["fit_s"],
                              **{k: round(v["acc"], 4) for k, v in rec["selected"].items()}}), flush=True)
        t0 = time.perf_counter()
        o = create_strategy("finetune", seed=seed, **PLAIN_RECIPE, **common).fit(tgt_labelled)
        acc = float(o.evaluate(test)["accuracy"])
        runs["oracle (target-trained)"].append({"seed": seed, "acc": acc, "fit_s": round(time.perf_counter() - t0, 1)})
        print(json.dumps({"method": "oracle (target-trained)", "seed": seed, "acc": round(acc, 4)}), flush=True)
    return runs


def summarise(runs: dict) -> dict:
    def ms(v):
        return {"mean": float(np.mean(v)), "sd": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0, "n": len(v)}

    oracle = ms([r["acc"] for r in runs["oracle (target-trained)"]])
    rows = {"oracle (target-trained)": {"acc": oracle}}
    base = {k: ms([r["selected"][k]["acc"] for r in runs["source-only"]])["mean"] for k in SELECTORS}
    for m in METHODS:
        row = {k: ms([r["selected"][k]["acc"] for r in runs[m]]) for k in SELECTORS}
        row["epochs_selected"] = {k: [r["selected"][k].get("epoch") for r in runs[m]] for k in ("im", "snd", "entropy", "oracle")}
        if m != "source-only":
            row["gap_closed"] = {k: (row[k]["mean"] - base[k]) / (oracle["mean"] - base[k])
                                 if oracle["mean"] > base[k] else float("nan") for k in SELECTORS}
        row["fit_s_mean"] = float(np.mean([r["fit_s"] for r in runs[m]]))
        rows[m] = row
    # Choosing among all methods and epochs without labels: the IM-best (method, epoch) per seed (seeds with curves).
    per_seed = []
    for i in range(len(runs["source-only"])):
        if all(runs[m][i].get("history") for m in METHODS):
            cands = [(h["target_im"], h["oracle_target_accuracy"], m) for m in METHODS for h in runs[m][i]["history"]]
            per_seed.append(max(cands)[1:])
    if per_seed:
        rows["IM over all methods and epochs"] = {"acc": ms([a for a, _ in per_seed]),
                                                  "methods": [m for _, m in per_seed]}
    return rows


def markdown(out: dict) -> str:
    pm = lambda d: f"{100 * d['mean']:.1f} ± {100 * d['sd']:.1f}"  # noqa: E731
    lines = ["| direction | steps | method | IM-selected | SND-selected | entropy-selected | last epoch | oracle-selected "
             "| gap closed (IM) | gap closed (oracle sel.) | TLlib |", "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for d, rows in out["results"].items():
        steps = out.get("budget", {}).get(d, {}).get("steps", "")
        tl = TLLIB_TABLE.get(d, {})
        for m in METHODS:
            r = rows[m]
            g = r.get("gap_closed")
            gi = f"{100 * g['im']:.0f}%" if g else ""
            go = f"{100 * g['oracle']:.0f}%" if g else ""
            lines.append(f"| {d} | {steps} | {LABELS[m]} | {pm(r['im'])} | {pm(r['snd'])} | {pm(r['entropy'])} "
                         f"| {pm(r['last'])} | {pm(r['oracle'])} | {gi} | {go} | {tl.get(m, '')} |")
        a = rows.get("IM over all methods and epochs")
        if a:
            lines.append(f"| {d} | {steps} | IM over all methods and epochs ({', '.join(a['methods'])}) "
                         f"| {pm(a['acc'])} | | | | | | | |")
        lines.append(f"| {d} | {steps} | **oracle (target-trained)** | | | | "
                     f"{pm(rows['oracle (target-trained)']['acc'])} | | | | |")
    return "\n".join(lines)


def _runs_of(out: dict) -> dict:
    """{direction: {method: [run records]}} of one saved run; the compact per-fit records of the first digits runs
    (``fits``: each selector's accuracy, no epochs or curves) become records without them."""
    if "raw" in out:
        return out["raw"]
    runs = {}
    for d, fits in out.get("fits", {}).items():
        by = runs.setdefault(d, {})
        for f in fits:
            rec = ({"seed": f["seed"], "acc": f["acc"]} if "acc" in f else
                   {"seed": f["seed"], "fit_s": f["fit_s"], "history": None,
                    "selected": {k: {"acc": f[k], "epoch": None} for k in SELECTORS}})
            by.setdefault(f["method"], []).append(rec)
    return runs


def report(files: list[str]) -> str:
    """One markdown table from the JSON files of several runs (``--save``), in the order given; runs of one
    direction in several files (seeds split over sessions) are pooled, each seed once."""
    pooled, budget = {}, {}
    for f in files:
        with open(f) as fh:
            out = json.load(fh)
        budget.update(out.get("budget", {}))
        for d, runs in _runs_of(out).items():
            for m, recs in runs.items():
                have = {r["seed"] for r in pooled.setdefault(d, {}).setdefault(m, [])}
                pooled[d][m] += [r for r in recs if r["seed"] not in have]
    return markdown({"results": {d: summarise(runs) for d, runs in pooled.items()}, "budget": budget})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--size", type=int, default=16)
    ap.add_argument("--n-usps", type=int, default=1800)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--backbone", default="builtin:small-cnn")
    ap.add_argument("--directions", default="digits->usps,usps->digits",
                    help="comma-separated, of mnist->usps, usps->mnist, digits->usps, usps->digits")
    ap.add_argument("--recipe", choices=["tllib"], help="TLlib's digit recipe (overrides backbone, size, batch, "
                    "optimiser, weight decay, bottleneck and lr)")
    ap.add_argument("--steps", type=int, help="optimiser steps per fit (rounded up to whole source passes); "
                    "overrides --epochs")
    ap.add_argument("--save", help="write the JSON here, rewritten after every direction")
    ap.add_argument("--markdown", action="store_true", help="also print a markdown table")
    ap.add_argument("--report", nargs="+", metavar="JSON", help="only print one markdown table from saved runs")
    args = ap.parse_args()
    if args.report:
        print(report(args.report))
        return
    if args.recipe == "tllib":
        args.backbone, args.size, args.batch_size = TLLIB["backbone"], TLLIB["size"], TLLIB["batch_size"]

    import torch

    torch.set_num_threads(args.threads)
    from transferkit.utils import environment

    t_start = time.perf_counter()
    directions = args.directions.split(",")
    pairs, source = load_pairs(args.size, args.n_usps, directions)
    seeds = [int(s) for s in args.seeds.split(",")]
    out = {"benchmark": "da_digits_usps", "config": vars(args), "data": source,
           "sizes": {d: {"source": len(s), "target": len(t), "target_test": len(tt)} for d, (s, t, tt) in pairs.items()},
           "environment": {k: environment()[k] for k in ("torch", "cpu_count", "cuda")}, "anchors": ANCHORS,
           "results": {}, "budget": {}, "raw": {}}
    for d in directions:
        src, tgt, test = pairs[d]
        per_epoch = len(src) // args.batch_size
        epochs = -(-args.steps // per_epoch) if args.steps else args.epochs
        common = dict(backbone=args.backbone, epochs=epochs, batch_size=args.batch_size, lr=args.lr,
                      input_size=args.size, progress=False)
        if args.recipe == "tllib":
            common.update(lr=TLLIB["lr"][d], optimizer=TLLIB["optimizer"], weight_decay=TLLIB["weight_decay"])
        da_only = {"bottleneck_dim": TLLIB["bottleneck_dim"]} if args.recipe == "tllib" else {}
        out["budget"][d] = {"epochs": epochs, "steps_per_epoch": per_epoch, "steps": epochs * per_epoch,
                            **{k: common[k] for k in ("lr", "batch_size")}}
        runs = run_direction(src, tgt, test, common, seeds, da_only)
        out["raw"][d] = runs
        out["results"][d] = summarise(runs)
        out["total_s"] = round(time.perf_counter() - t_start, 1)
        if args.save:
            with open(args.save, "w") as f:
                json.dump(out, f, indent=1)
    print(json.dumps({k: v for k, v in out.items() if k != "raw"}, indent=1))
    if args.markdown:
        print(markdown(out))


if __name__ == "__main__":
    main()
