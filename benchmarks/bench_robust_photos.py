"""Robustness on photos: adversarial fine-tuning against plain fine-tuning of ImageNet Lite0 (issue 28 stage 4).

Both start from ImageNet EfficientNet-Lite0 (``timm:tf_efficientnet_lite0``, offline weights) at 224 px and train on
the 244 ants/bees training photos; both are evaluated on the 153 val photos.

  finetune       ``FineTune`` with its shipped defaults (LP-FT, frozen BatchNorm, 6 epochs of batch 32)
  adversarial    ``AdversarialFineTune``: every training image replaced by a PGD example (Madry et al. 2018) at
                 L-inf ``--train-eps`` (4/255), ``--train-steps`` (3) steps of 2.5 eps / steps, random start;
                 6 epochs of batch 32 (as the fine-tuning defaults), every layer at AdamW 1e-4 (the defaults'
                 body rate: the strategy has no separate head rate), cosine

``--epochs`` and ``--size`` change the adversarial budget and the resolution of both rows (a diagnostic run).
Each row keeps its per-epoch training curve, the adversarial row's accuracy on its own training attack included.

Threat model of the evaluation (Salman et al. 2020's ImageNet-scale L-inf radii): white-box PGD-10, L-inf,
eps 2/255 and 4/255 in [0, 1] pixel space, step 2.5 eps / 10, one random start, on every val photo.

    TRANSFERKIT_DATA=../shared/data python benchmarks/bench_robust_photos.py --threads 2 --seeds 0 --markdown

Prints one JSON object (``--markdown``: a table); ``--save PATH`` writes the JSON after every run.
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

EPS = (2, 4)  # / 255


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def cpu() -> tuple[float, float]:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime, ru.ru_stime


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--train-eps", type=float, default=4.0, help="training radius, in 1/255")
    ap.add_argument("--train-steps", type=int, default=3)
    ap.add_argument("--methods", nargs="+", default=["finetune", "adversarial"])
    ap.add_argument("--epochs", type=int, default=6, help="epochs of adversarial fine-tuning")
    ap.add_argument("--size", type=int, default=None, help="input size in px (default: Lite0's 224)")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--save", default=None)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from transferkit.data import load_dataset
    from transferkit.robustness import threat_model
    from transferkit.strategies import create_strategy
    from transferkit.strategies.domain.adversarial import robustness

    train, val = load_dataset("hymenoptera:train"), load_dataset("hymenoptera:val")
    common = dict(backbone="timm:tf_efficientnet_lite0", progress=False, input_size=args.size)
    params = {"finetune": {},
              "adversarial": dict(eps=args.train_eps / 255, steps=args.train_steps, epochs=args.epochs,
                                  batch_size=32, lr=1e-4)}
    out = {"threads": args.threads, "train": len(train), "val": len(val), "train_eps": f"{args.train_eps:g}/255",
           "train_steps": args.train_steps, "adversarial_epochs": args.epochs, "input_px": args.size or 224,
           "threat": "white-box PGD-10, L-inf, step 2.5 eps/10, 1 random start, [0, 1] pixels", "runs": []}
    for seed in args.seeds:
        for method in args.methods:
            name = "finetune" if method == "finetune" else "adversarial-finetune"
            u0, s0, t0 = *cpu(), time.perf_counter()
            model = create_strategy(name, seed=seed, **common, **params[method]).fit(train)
            fit = {"fit_s": round(time.perf_counter() - t0, 1), "fit_user_s": round(cpu()[0] - u0, 1),
                   "fit_system_s": round(cpu()[1] - s0, 1)}
            # per epoch: the training loss and accuracy, and for the adversarial row the accuracy on the training
            # attack's examples (train_adv_acc): whether the network learns the adversarial task at all
            curve = [{k: round(v, 4) for k, v in h.items() if k in ("train_loss", "train_acc", "train_adv_acc")}
                     for h in model.history_]
            row = {"method": method, "seed": seed, **fit, "history": curve}
            for e in EPS:
                t1 = time.perf_counter()
                r = robustness(model, val, threat_model(norm="linf", eps=e / 255, steps=10), batch_size=32)
                row["clean_accuracy"] = round(100 * r["clean_accuracy"], 2)
                row[f"robust_{e}"] = round(100 * r["robust_accuracy"], 2)
                row[f"attack_{e}_s"] = round(time.perf_counter() - t1, 1)
            row["peak_rss_gib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
            out["runs"].append(row)
            log(json.dumps(row))
            if args.save:
                Path(args.save).write_text(json.dumps(out, indent=2))
    print(markdown(out) if args.markdown else json.dumps(out, indent=2))


def markdown(out: dict) -> str:
    lines = ["| method | seed | clean accuracy (%) | " + " | ".join(f"robust accuracy, eps {e}/255 (%)" for e in EPS)
             + " | fit wall-clock | fit user / system CPU |", "|---|---:|---:|" + "---:|" * len(EPS) + "---:|---:|"]
    for r in out["runs"]:
        lines.append(f"| {r['method']} | {r['seed']} | {r['clean_accuracy']:.1f} | "
                     + " | ".join(f"{r[f'robust_{e}']:.1f}" for e in EPS)
                     + f" | {r['fit_s']:.0f} s | {r['fit_user_s']:.0f} s / {r['fit_system_s']:.0f} s |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
