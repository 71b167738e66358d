"""Domain adaptation between two real handwritten-digit collections: scikit-learn digits <-> USPS (issue 12).

scikit-learn ``digits`` (8x8, 17 grey levels, 1,797 images) and USPS (16x16, 256 levels; 7,291 train / 2,007
test) are scanned differently; both are resampled to one input size (``--size``, default 16 px: USPS's own,
digits upsampled 2x, antialiased bilinear, by :func:`transferkit.data.pairs.paired_domains`).

Both directions, labelled source and unlabelled target:

* digits -> USPS: source = all 1,797 digits; target (unlabelled) = ``--n-usps`` USPS train images (stratified
  subset, seed 0); target test = the 2,007 USPS test images.
* USPS -> digits: source = ``--n-usps`` USPS train images (the same subset); digits split 50/50 (stratified,
  seed 0) into the unlabelled target (899) and the target test (898).

Methods: source-only, DANN, MMD (DAN), CORAL, CDAN+E, the strategies of
``transferkit.strategies.domain_adaptation`` called as ``benchmarks/bench_domain.py`` calls them (same backbone,
batch, lr). Each fit logs per epoch the unsupervised validators on the target (IM, SND, mean entropy) and the
target-test accuracy (evaluation only); model selection over epochs is read from that history:
IM (max), SND (max), entropy (min), last epoch, and the oracle epoch chosen on target labels. The ceiling is a
target-trained oracle (``finetune`` on the *labelled* target images, same budget). "Gap closed" =
(method - source-only) / (oracle - source-only), each method and source-only under the same selection rule,
on the seed means. Seeds change initialisation and batch order; the data subsets stay fixed (seed 0).

    python benchmarks/bench_da_usps.py [--threads 1] [--seeds 0,1,2] [--epochs 6] [--size 16] [--n-usps 1800]
                                       [--markdown]
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from transferkit.strategies.reuse.finetune import PLAIN_RECIPE

METHODS = ["source-only", "dann", "mmd", "coral", "cdan"]
LABELS = {"source-only": "source-only", "dann": "DANN", "mmd": "MMD (DAN)", "coral": "Deep CORAL", "cdan": "CDAN+E"}
SELECTORS = {"im": ("target_im", "max"), "snd": ("target_snd", "max"), "entropy": ("target_entropy", "min"),
             "last": (None, None), "oracle": ("oracle_target_accuracy", "max")}
ANCHORS = {
    "Ganin 2015 MNIST->MNIST-M": {"source_only": 52.3, "dann": 76.7, "target_trained": 95.9, "dann_gap_closed": 0.56},
    "ADDA (Tzeng 2017) MNIST->USPS": {"source_only": 75.2, "dann": 77.1},
    "ADDA (Tzeng 2017) USPS->MNIST": {"source_only": 57.1, "dann": 73.0},
}


def load_pairs(size: int, n_usps: int):
    """{direction: (source, target with labels, target_test)} at ``size`` px, and where the data came from. The
    target's labels serve the target-trained oracle only; the adaptation methods get ``target.unlabelled()``."""
    from transferkit.data import load_dataset, stratified_split
    from transferkit.data.domains import align_classes
    from transferkit.data.pairs import paired_domains, resample

    digits = load_dataset("digits")
    usps_train, usps_test = load_dataset("usps:train"), load_dataset("usps:test")
    usps, _ = stratified_split(usps_train, 1 - n_usps / len(usps_train), seed=0)
    dig_tgt, dig_test = stratified_split(digits, 0.5, seed=0)
    out = {}
    for name, src, tgt, test in (("digits->usps", digits, usps, usps_test), ("usps->digits", usps, dig_tgt, dig_test)):
        s, t = paired_domains(src, tgt, size=size)
        out[name] = (s, t, resample(align_classes(s, test, role="target test"), (size, size)))
    return out, "transferkit.data: load_dataset('digits'), load_dataset('usps:train'/'usps:test'), paired_domains"


def pick(history: list, selector: str) -> dict:
    """The epoch a selection rule keeps and its target-test accuracy."""
    monitor, mode = SELECTORS[selector]
    if monitor is None:
        best = len(history) - 1
    else:
        vals = np.array([h.get(monitor, np.nan) for h in history], dtype=float)
        best = int(np.nanargmax(vals) if mode == "max" else np.nanargmin(vals))
    return {"epoch": best + 1, "acc": float(history[best]["oracle_target_accuracy"])}


def run_direction(src, tgt_labelled, test, common: dict, seeds: list[int]) -> dict:
    from transferkit.strategies import create_strategy

    tgt = tgt_labelled.unlabelled()

    runs = {m: [] for m in METHODS}
    runs["oracle (target-trained)"] = []
    for seed in seeds:
        for m in METHODS:
            t0 = time.perf_counter()
            s = create_strategy(m, diagnostics=False, selection="last", seed=seed, **common)
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
        row["epochs_selected"] = {k: [r["selected"][k]["epoch"] for r in runs[m]] for k in ("im", "snd", "entropy", "oracle")}
        if m != "source-only":
            row["gap_closed"] = {k: (row[k]["mean"] - base[k]) / (oracle["mean"] - base[k])
                                 if oracle["mean"] > base[k] else float("nan") for k in SELECTORS}
        row["fit_s_mean"] = float(np.mean([r["fit_s"] for r in runs[m]]))
        rows[m] = row
    # Choosing among all methods and epochs without labels: the IM-best (method, epoch) per seed.
    per_seed = []
    for i in range(len(runs["source-only"])):
        cands = [(h["target_im"], h["oracle_target_accuracy"], m) for m in METHODS for h in runs[m][i]["history"]]
        per_seed.append(max(cands)[1:])
    rows["IM over all methods and epochs"] = {"acc": ms([a for a, _ in per_seed]), "methods": [m for _, m in per_seed]}
    return rows


def markdown(out: dict) -> str:
    pm = lambda d: f"{100 * d['mean']:.1f} ± {100 * d['sd']:.1f}"  # noqa: E731
    lines = ["| direction | method | IM-selected | SND-selected | entropy-selected | last epoch | oracle-selected "
             "| gap closed (IM) | gap closed (oracle sel.) |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for d, rows in out["results"].items():
        for m in METHODS:
            r = rows[m]
            g = r.get("gap_closed")
            gi = f"{100 * g['im']:.0f}%" if g else ""
            go = f"{100 * g['oracle']:.0f}%" if g else ""
            lines.append(f"| {d} | {LABELS[m]} | {pm(r['im'])} | {pm(r['snd'])} | {pm(r['entropy'])} | {pm(r['last'])} "
                         f"| {pm(r['oracle'])} | {gi} | {go} |")
        a = rows["IM over all methods and epochs"]
        lines.append(f"| {d} | IM over all methods and epochs ({', '.join(a['methods'])}) | {pm(a['acc'])} | | | | | | |")
        lines.append(f"| {d} | **oracle (target-trained)** | | | | {pm(rows['oracle (target-trained)']['acc'])} | | | |")
    return "\n".join(lines)


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
    ap.add_argument("--directions", default="digits->usps,usps->digits")
    ap.add_argument("--markdown", action="store_true", help="also print a markdown table")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from transferkit.utils import environment

    t_start = time.perf_counter()
    pairs, source = load_pairs(args.size, args.n_usps)
    common = dict(backbone=args.backbone, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                  input_size=args.size, progress=False)
    seeds = [int(s) for s in args.seeds.split(",")]
    out = {"benchmark": "da_digits_usps", "config": vars(args), "data": source,
           "sizes": {d: {"source": len(s), "target": len(t), "target_test": len(tt)} for d, (s, t, tt) in pairs.items()},
           "environment": {k: environment()[k] for k in ("torch", "cpu_count", "cuda")}, "anchors": ANCHORS,
           "results": {}, "raw": {}}
    for d in args.directions.split(","):
        src, tgt, test = pairs[d]
        runs = run_direction(src, tgt, test, common, seeds)
        out["raw"][d] = runs
        out["results"][d] = summarise(runs)
    out["total_s"] = round(time.perf_counter() - t_start, 1)
    print(json.dumps({k: v for k, v in out.items() if k != "raw"}, indent=1))
    if args.markdown:
        print(markdown(out))


if __name__ == "__main__":
    main()
