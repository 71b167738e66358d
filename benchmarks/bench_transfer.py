"""Does pre-training transfer? Pre-trained vs from-scratch, on Fashion-MNIST, with 10 / 50 / 500 labels per class.

Protocol: ``transferkit.pretrain.pretrain_backbone`` trains builtin:small-cnn on the 5 *source* classes
(T-shirt/top, Trouser, Pullover, Dress, Coat; ``--pretrain-per-class`` images each). The *target* is the
other 5 classes (Sandal, Shirt, Sneaker, Bag, Ankle boot): ``k`` labelled training images per class from the
train split, evaluated on ``--test-per-class`` images per class of the test split. Each of feature extraction
(logistic regression, C by 5-fold CV), fine-tuning (layer-wise decay 0.7) and progressive unfreezing (ULMFiT
top-down) runs with the same recipe from the pre-trained weights and from a random initialisation of the same
architecture. Prints JSON (and a Markdown table with ``--markdown``).

    python benchmarks/bench_transfer.py --markdown                     # full run
    python benchmarks/bench_transfer.py --pretrain-per-class 600 --test-per-class 100 --markdown   # reduced
"""
from __future__ import annotations

import argparse
import json
import math
import shutil
import tempfile
import time

import torch

from transferkit.strategies.reuse.recipe import PLAIN_RECIPE

SOURCE = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat"]


def recipe(k: int, n_classes: int = 5):
    """Epochs and batch size for ~100-200 optimisation steps whatever the training-set size."""
    n = k * n_classes
    batch = 16 if n < 100 else 32 if n < 1000 else 64
    steps = max(1, n // batch)
    epochs = int(min(40, max(5, math.ceil(120 / steps))))
    return epochs, batch


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ks", type=int, nargs="+", default=[10, 50, 500])
    ap.add_argument("--pretrain-per-class", type=int, default=1200)
    ap.add_argument("--pretrain-epochs", type=int, default=4)
    ap.add_argument("--test-per-class", type=int, default=200)
    ap.add_argument("--size", type=int, default=28, help="input size (Fashion-MNIST is 28 px)")
    ap.add_argument("--methods", nargs="+", default=["features", "finetune", "freeze"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from transferkit.data import class_split, k_per_class, load_fashion_mnist
    from transferkit.pretrain import pretrain_backbone
    from transferkit.strategies import create_strategy

    train_all = load_fashion_mnist("train", download=False)
    test_all = load_fashion_mnist("test", download=False)
    src_train, tgt_train = class_split(train_all, SOURCE)
    _, tgt_test = class_split(test_all, SOURCE)
    tgt_test = k_per_class(tgt_test, args.test_per_class, seed=args.seed)
    work = tempfile.mkdtemp(prefix="tk-bench-transfer-")

    t0 = time.perf_counter()
    src = k_per_class(src_train, args.pretrain_per_class, seed=args.seed)
    path = pretrain_backbone(src, f"{work}/pretrained", arch="builtin:small-cnn", epochs=args.pretrain_epochs, lr=3e-3,
                             batch_size=64, input_size=args.size, val_fraction=0.1, seed=args.seed, progress=False)
    pretrain_s = time.perf_counter() - t0
    inits = {"pretrained": dict(backbone=f"file:{path}"),
             "scratch": dict(backbone="builtin:small-cnn", pretrained=False, input_size=args.size)}

    rows = []
    for k in args.ks:
        train = k_per_class(tgt_train, k, seed=args.seed)
        epochs, batch = recipe(k)
        for method in args.methods:
            for init, bb in inits.items():
                if method == "features":
                    params = dict(classifier="logreg", cache=f"{work}/features")
                elif method == "finetune":
                    params = dict(epochs=epochs, batch_size=batch, lr=3e-3, lr_decay=0.7, warmup_epochs=min(1, epochs / 10),
                                  **PLAIN_RECIPE)
                else:
                    params = dict(epochs=epochs, batch_size=batch, lr=3e-3, lr_decay=0.7, freeze="all-but-head",
                                  unfreeze_every=max(1, epochs // 5), **PLAIN_RECIPE)
                t = time.perf_counter()
                m = create_strategy(method, seed=args.seed, progress=False, **bb, **params).fit(train)
                metrics = m.evaluate(tgt_test)
                rows.append({"k": k, "method": method, "init": init, "accuracy": metrics["accuracy"],
                             "macro_f1": metrics["macro_f1"], "fit_s": time.perf_counter() - t,
                             "n_trainable_params": m.n_trainable_params_,
                             "epochs": params.get("epochs"), "batch_size": params.get("batch_size")})
                print(json.dumps(rows[-1]), flush=True)

    shutil.rmtree(work, ignore_errors=True)
    out = {"benchmark": "transfer_vs_scratch", "dataset": "fashion-mnist", "source_classes": SOURCE,
           "target_classes": tgt_train.classes, "pretrain_per_class": args.pretrain_per_class,
           "pretrain_epochs": args.pretrain_epochs, "pretrain_s": pretrain_s, "test_per_class": args.test_per_class,
           "size": args.size, "torch_threads": torch.get_num_threads(), "rows": rows}
    print(json.dumps(out, indent=2))
    if args.markdown:
        print("\n| method | k / class | pre-trained | scratch | gain |\n|---|---:|---:|---:|---:|")
        for method in args.methods:
            for k in args.ks:
                acc = {r["init"]: r["accuracy"] for r in rows if r["k"] == k and r["method"] == method}
                print(f"| {method} | {k} | {acc['pretrained']:.3f} | {acc['scratch']:.3f} | "
                      f"{acc['pretrained'] - acc['scratch']:+.3f} |")


if __name__ == "__main__":
    main()
