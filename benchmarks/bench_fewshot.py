"""Few-shot and zero-shot on Fashion-MNIST class splits, and the speed of episodic evaluation.

Few-shot: builtin:small-cnn pre-trained (transferkit pretrain) on 5 base classes of the train split;
600 5-way {1,5}-shot 15-query episodes on the 5 novel classes of the test split (classes disjoint).
Zero-shot: small-cnn pre-trained on 7 seen classes; unseen = Pullover, Dress, Sneaker; ZSL and GZSL
(seen/unseen/H) on the test split with the packaged attribute table and descriptions.
Timing: 600 5-way 5-shot episodes on cached features (target < 2 s on 2 CPU cores).

    python benchmarks/bench_fewshot.py                  # ~3-5 min on 2 CPU cores
    python benchmarks/bench_fewshot.py --per-class 600 --epochs 4 --maml

Prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch

from transferkit.data import class_split, k_per_class, load_fashion_mnist
from transferkit.pretrain import pretrain_backbone
from transferkit.strategies.scarce.bilinear import BilinearZSL
from transferkit.strategies.scarce.dap import DAP
from transferkit.strategies.scarce.eszsl import ESZSL
from transferkit.strategies.scarce.maml import MAML
from transferkit.strategies.scarce.probes import SupportFineTuneHead, SupportLinearProbe
from transferkit.strategies.scarce.protonet import ProtoNet
from transferkit.strategies.scarce.simpleshot import SimpleShot
from transferkit.strategies.scarce.zeroshot import calibration_from_seen

BASE = ["T-shirt/top", "Trouser", "Coat", "Sandal", "Bag"]
UNSEEN = ["Pullover", "Dress", "Sneaker"]


def _r(d):
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in d.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-class", type=int, default=300, help="train images per class for pre-training")
    ap.add_argument("--test-per-class", type=int, default=300, help="test images per class for evaluation")
    ap.add_argument("--epochs", type=int, default=2, help="pre-training epochs")
    ap.add_argument("--episodes", type=int, default=600)
    ap.add_argument("--maml", action="store_true", help="also meta-train and evaluate first-order MAML (slow)")
    args = ap.parse_args()
    out = {"threads": torch.get_num_threads()}
    train, test = load_fashion_mnist("train", download=False), load_fashion_mnist("test", download=False)
    train, test = k_per_class(train, args.per_class, seed=0), k_per_class(test, args.test_per_class, seed=0)
    common = dict(progress=False, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        # -- few-shot ----------------------------------------------------------------------------------
        t0 = time.perf_counter()
        spec = "file:" + str(pretrain_backbone(train, f"{tmp}/fs", classes=BASE, epochs=args.epochs, lr=3e-3,
                                               val_fraction=0.0, progress=False))
        out["fewshot_pretrain_s"] = round(time.perf_counter() - t0, 1)
        base, _ = class_split(train, BASE)
        _, novel = class_split(test, BASE)
        fs = {}
        methods = {
            "simpleshot": SimpleShot(backbone=spec, **common),
            "support-linear-probe": SupportLinearProbe(backbone=spec, **common),
            "support-finetune-head": SupportFineTuneHead(backbone=spec, **common),
        }
        t0 = time.perf_counter()
        methods["protonet"] = ProtoNet(backbone=spec, epochs=1, episodes_per_epoch=100, lr=1e-4, **common)
        methods["protonet"].fit(base)
        out["protonet_meta_train_s"] = round(time.perf_counter() - t0, 1)
        for name, m in methods.items():
            if not hasattr(m, "classes_"):
                m.fit(base)
            for k in (1, 5):
                r = m.evaluate(novel, n_way=5, k_shot=k, q_queries=15, episodes=args.episodes, seed=0)
                fs[f"{name} {k}-shot"] = _r({"accuracy": r["accuracy"], "ci95": r["ci95"], "eval_s": r["eval_s"]})
        if args.maml:
            t0 = time.perf_counter()
            maml = MAML(backbone=spec, epochs=1, episodes_per_epoch=50, meta_batch=2, first_order=True, **common).fit(base)
            fit_s = time.perf_counter() - t0
            for k in (1, 5):
                r = maml.evaluate(novel, n_way=5, k_shot=k, episodes=100, seed=0)
                fs[f"maml-fo {k}-shot (100 episodes)"] = _r({"accuracy": r["accuracy"], "ci95": r["ci95"],
                                                             "eval_s": r["eval_s"], "fit_s": fit_s})
        out["fewshot"] = fs
        # timing: cached features, 600 5-way 5-shot episodes (features already cached by the runs above)
        ss = methods["simpleshot"]
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            ss.evaluate(novel, n_way=5, k_shot=5, episodes=600, seed=1)
            times.append(time.perf_counter() - t0)
        out["600_episodes_cached_s"] = round(min(times), 3)
        out["600_episodes_target_s"] = 2.0

        # -- zero-shot ---------------------------------------------------------------------------------
        seen_names = [c for c in train.classes if c not in UNSEEN]
        t0 = time.perf_counter()
        zspec = "file:" + str(pretrain_backbone(train, f"{tmp}/zs", classes=seen_names, epochs=args.epochs, lr=3e-3,
                                                val_fraction=0.0, progress=False))
        out["zeroshot_pretrain_s"] = round(time.perf_counter() - t0, 1)
        _, seen_train = class_split(train, UNSEEN)
        zs = {}
        for label, m in [("dap (attributes)", DAP(backbone=zspec, **common)),
                         ("eszsl (attributes)", ESZSL(backbone=zspec, **common)),
                         ("eszsl (text)", ESZSL(backbone=zspec, semantic="text", **common)),
                         ("bilinear (attributes)", BilinearZSL(backbone=zspec, epochs=10, lr=1e-2, **common)),
                         ("bilinear (text)", BilinearZSL(backbone=zspec, semantic="text", epochs=10, lr=1e-2, **common))]:
            m.fit(seen_train, semantics="fashion-mnist")
            r = m.evaluate(test)
            cal = m.evaluate(test, calibration=calibration_from_seen(m, seen_train))
            zs[label] = _r({k: r[k] for k in ("zsl_accuracy", "gzsl_seen", "gzsl_unseen", "gzsl_h")}
                           | {"gzsl_h_calibrated": cal["gzsl_h"], "calibration": cal["calibration"]})
        out["zeroshot"] = zs
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
