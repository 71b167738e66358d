"""Does a training-free transferability score rank backbones like their actual transfer accuracy?

Pre-trains backbones on the source classes of a dataset (digits 0-4 by default), adds randomly initialised
ones, scores every backbone on the target classes (5-9) with LogME, N-LEEP, NCE and kNN / linear probes
(advisor.score_backbones), then measures what the scores predict: test accuracy of feature extraction
(`features`) and of fine-tuning (`finetune`, same epochs and seed for all). Prints one JSON object with the
table and Kendall's tau between each score and each actual accuracy.

    .venv/bin/python benchmarks/advisor_transferability.py                 # digits, ~3-6 min on 2 CPU cores
    .venv/bin/python benchmarks/advisor_transferability.py --dataset fashion-mnist --n-per-class 300
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "2")

from transferkit.strategies.reuse.recipe import PLAIN_RECIPE  # noqa: E402 (after the thread setting)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="digits", help="'digits' or 'fashion-mnist'")
    ap.add_argument("--n-per-class", type=int, default=0, help="subsample every class to this many images (0: all)")
    ap.add_argument("--pretrain-epochs", type=int, default=4)
    ap.add_argument("--finetune-epochs", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from scipy.stats import kendalltau

    from transferkit.advisor import score_backbones
    from transferkit.data import class_split, k_per_class, load_dataset, stratified_split
    from transferkit.pretrain import pretrain_backbone
    from transferkit.strategies import create_strategy

    ds = load_dataset(args.dataset if args.dataset == "digits" else "fashion-mnist:test")
    if args.n_per_class:
        ds = k_per_class(ds, args.n_per_class, seed=args.seed)
    source, target = class_split(ds, list(ds.classes[:5]))
    train, test = stratified_split(target, 0.4, seed=args.seed)
    tmp = tempfile.mkdtemp(prefix="tk-bench-advisor-")
    specs, t0 = [], time.perf_counter()
    for arch in ("builtin:small-cnn", "builtin:tiny-resnet"):
        p = pretrain_backbone(source, os.path.join(tmp, arch.split(":")[1]), arch=arch, epochs=args.pretrain_epochs,
                              lr=3e-3, batch_size=64, val_fraction=0.0, progress=False, seed=args.seed)
        specs.append((f"{arch} pre-trained on source", f"file:{p}"))
    specs += [("builtin:small-cnn random init", "builtin:small-cnn"), ("builtin:micro-cnn random init", "builtin:micro-cnn")]
    pretrain_s = time.perf_counter() - t0
    label = {spec: name for name, spec in specs}
    t0 = time.perf_counter()
    rows = score_backbones([s for _, s in specs], train, metrics=("logme", "nleep", "nce", "knn", "linear"),
                           pretrained=False, cache=os.path.join(tmp, "features"), seed=args.seed)
    score_s = time.perf_counter() - t0
    for r in rows:
        r["name"] = label.get(r["backbone"], r["backbone"])
        for strat, kw in (("features", {}), ("finetune", dict(epochs=args.finetune_epochs, lr=3e-3, batch_size=32, **PLAIN_RECIPE))):
            t1 = time.perf_counter()
            m = create_strategy(strat, backbone=r["backbone"], pretrained=False, progress=False, seed=args.seed, **kw).fit(train)
            r[f"{strat}_accuracy"] = m.evaluate(test)["accuracy"]
            r[f"{strat}_s"] = time.perf_counter() - t1
    taus = {}
    for score in ("logme", "nleep", "nce", "knn", "linear"):
        for acc in ("features_accuracy", "finetune_accuracy"):
            taus[f"{score} vs {acc}"] = float(kendalltau([r[score] for r in rows], [r[acc] for r in rows]).statistic)
    print(json.dumps({"dataset": args.dataset, "n_train": len(train), "n_test": len(test), "pretrain_s": pretrain_s,
                      "score_s": score_s, "rows": [{k: v for k, v in r.items() if k != "seconds"} for r in rows],
                      "kendall_tau": taus}, indent=2, default=float))


if __name__ == "__main__":
    main()
