"""Distillation on photos, with every model's deployment figures (issue 28 stage 3).

Two cases on the ants/bees photos (244 training, 153 val), each student against the same student trained alone:

  lite2->lite0   the realistic phone case: a fine-tuned ImageNet EfficientNet-Lite2 teacher (``FineTune`` defaults,
                 260 px) distilled into ImageNet Lite0 (224 px); the baseline is Lite0 fine-tuned alone
                 (``FineTune`` defaults).
  lite0->small   the >= 10x case: the fine-tuned Lite0 (seed 0 of the row above, whose deployment figures are that
                 row's) distilled into ``--small``
                 (default ``builtin:mobile-cnn``, 0.14 M parameters, 33x fewer, no pre-trained weights) at
                 ``--small-size`` px; the baseline is the same network trained alone with the same budget.

Distillation follows Beyer et al. 2022 ("Knowledge distillation: a good teacher is patient and consistent"): the
teacher scores the very crop the student sees (augmentation on, no cached logits; the teacher resizes the crop to
its own input size), and the student trains long (``--small-epochs``). Loss: Hinton's, T = ``--temperature``,
``--alpha`` on the soft term. The teacher is trained once (seed 0); students and baselines take ``--seeds``.

For every model: parameters, val accuracy, and CPU latency per image at batch 1 and 32 in PyTorch eager and in ONNX
Runtime, fp32 and static int8 (QDQ, per-channel, calibrated on the training photos, as ``export --int8``), all on
one thread. Accuracy of the int8 file is reported beside the fp32 one.

    TRANSFERKIT_DATA=../shared/data python benchmarks/bench_distill_photos.py --threads 1 --seeds 0 1 2 \
        --save benchmarks/results/distill-photos.json --markdown

The distilled Lite0 trains under fine-tuning's recipe and budget (``--distill-recipe finetune``, the default since
``Distill`` took the recipe: LP-FT, the body at a tenth of the head's rate, frozen BatchNorm, lr 1e-3, batch 32, the
Lite0 baseline's epochs); ``--distill-recipe before`` reproduces the first table's row (lr 1e-4 on every layer from
the first step, batch 64, BatchNorm training). ``--skip-alone`` leaves out the Lite0-alone rows (``FineTune`` did not
change; their figures are the saved table's) and runs the first case only.

``--control`` runs only the control row of the first case: Lite0 alone under the distilled students' recipe, so that
the distillation loss and the recipe it trains with can be told apart.

Prints one JSON object (``--markdown``: a table too); ``--save`` rewrites the JSON after every model.
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

TARGETS = {"accuracy_retained": 0.97, "int8_speedup_b1": 1.5, "int8_points_lost": 1.0}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def deployment(model, val, train, work: Path, batches=(1, 32)) -> dict:
    """Parameters, accuracy, and PyTorch / ORT fp32 / ORT int8 latency per image of one fitted model."""
    from transferkit.export import (data_config_of, export_onnx, measure_latency, measure_onnx_latency,
                                    onnx_evaluate, quantize_onnx)
    from transferkit.utils import count_parameters

    cfg = data_config_of(model)
    shape = tuple(cfg["input_size"])
    fp32 = export_onnx(model, work / "model.onnx")
    int8 = quantize_onnx(work / "model.onnx", work / "model.int8.onnx", mode="static", calibration=train,
                         data_config=cfg)
    row = {"params": count_parameters(model.model_), "input_px": shape[-1],
           "accuracy": 100 * model.evaluate(val)["accuracy"],
           "accuracy_int8": 100 * onnx_evaluate(int8["path"], val, cfg)["accuracy"]}
    for b in batches:
        row[f"pytorch_ms_b{b}"] = measure_latency(model, b, threads=1)
        row[f"ort_fp32_ms_b{b}"] = measure_onnx_latency(fp32["path"], shape, b)
        row[f"ort_int8_ms_b{b}"] = measure_onnx_latency(int8["path"], shape, b)
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads for training (latency: 1)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--cases", nargs="+", default=["lite2->lite0", "lite0->small"])
    ap.add_argument("--epochs", type=int, default=None, help="epochs of the Lite students (default: FineTune's)")
    ap.add_argument("--small", default="builtin:mobile-cnn")
    ap.add_argument("--small-size", type=int, default=112)
    ap.add_argument("--small-epochs", type=int, default=60)
    ap.add_argument("--small-lr", type=float, default=3e-3)
    ap.add_argument("--temperature", type=float, default=4.0)
    ap.add_argument("--alpha", type=float, default=0.9)
    ap.add_argument("--max-train", type=int, default=None, help="smoke runs: this many training photos")
    ap.add_argument("--control", action="store_true",
                    help="only the control row: Lite0 trained alone with the distilled students' recipe (every "
                         "layer at lr 1e-4 from the first step, batch 64, BatchNorm training, flip), i.e. KD's alpha at 0")
    ap.add_argument("--distill-recipe", choices=["finetune", "before"], default="finetune")
    ap.add_argument("--skip-alone", action="store_true", help="no Lite0-alone rows; the first case only")
    ap.add_argument("--save", default=None)
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()

    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    from transferkit.data import load_dataset
    from transferkit.strategies import create_strategy
    from transferkit.strategies.reuse.recipe import PLAIN_RECIPE

    train, val = load_dataset("hymenoptera:train"), load_dataset("hymenoptera:val")
    if args.max_train:
        train = train.subset(np.random.default_rng(0).permutation(len(train))[: args.max_train])
    out = {"config": vars(args), "targets": TARGETS, "rows": []}
    t_start = time.perf_counter()

    def record(case, role, seed, model, fit_s):
        with tempfile.TemporaryDirectory() as d:
            row = {"case": case, "role": role, "seed": seed, "fit_s": round(fit_s, 1),
                   **deployment(model, val, train, Path(d))}
        ru = resource.getrusage(resource.RUSAGE_SELF)
        row.update(user_s=round(ru.ru_utime, 1), system_s=round(ru.ru_stime, 1),
                   peak_rss_gib=round(ru.ru_maxrss / 2 ** 20, 2), elapsed_s=round(time.perf_counter() - t_start, 1))
        out["rows"].append(row)
        log(json.dumps(row))
        if args.save:
            Path(args.save).write_text(json.dumps(out, indent=1))

    def fit(name, **kw):
        t0 = time.perf_counter()
        return create_strategy(name, progress=False, **kw).fit(train), time.perf_counter() - t0

    lite_epochs = {"epochs": args.epochs} if args.epochs else {}
    if args.control:  # what separates the distillation loss from the recipe it is trained with
        for seed in args.seeds:
            m, s = fit("finetune", backbone="timm:tf_efficientnet_lite0", seed=seed, lr=1e-4, augment="flip",
                       batch_size=64, **PLAIN_RECIPE, **{"epochs": 6, **lite_epochs})
            record("lite2->lite0", "student alone, the distilled students' recipe", seed, m, s)
        args.cases = []
        if args.save:
            Path(args.save).write_text(json.dumps(out, indent=1))
        print(json.dumps(out, indent=1))
        return
    lite0 = {}
    for seed in ([] if args.skip_alone else args.seeds):
        lite0[seed], s = fit("finetune", backbone="timm:tf_efficientnet_lite0", seed=seed, **lite_epochs)
        record("lite2->lite0", "student alone", seed, lite0[seed], s)
    if args.skip_alone:
        args.cases = ["lite2->lite0"]
    student_epochs = {seed: lite0[seed].epochs if seed in lite0 else (args.epochs or 6) for seed in args.seeds}
    recipe = (dict(batch_size=32) if args.distill_recipe == "finetune"
              else dict(lr=1e-4, augment="flip", batch_size=64, **PLAIN_RECIPE))
    if "lite2->lite0" in args.cases:
        teacher, s = fit("finetune", backbone="timm:tf_efficientnet_lite2", seed=0, **lite_epochs)
        record("lite2->lite0", "teacher", 0, teacher, s)
        for seed in args.seeds:
            m, s = fit("distill", teacher=teacher, backbone="timm:tf_efficientnet_lite0", seed=seed,
                       temperature=args.temperature, alpha=args.alpha, epochs=student_epochs[seed], **recipe)
            role = "student distilled" + (", fine-tuning's recipe" if args.distill_recipe == "finetune" else "")
            record("lite2->lite0", role, seed, m, s)
    if "lite0->small" in args.cases:
        teacher = lite0[args.seeds[0]]
        small = dict(backbone=args.small, pretrained=False, input_size=args.small_size, epochs=args.small_epochs,
                     lr=args.small_lr, augment="flip")
        for seed in args.seeds:
            m, s = fit("finetune", seed=seed, **PLAIN_RECIPE, **small)
            record("lite0->small", "student alone", seed, m, s)
            m, s = fit("distill", teacher=teacher, seed=seed, temperature=args.temperature, alpha=args.alpha, **small)
            record("lite0->small", "student distilled", seed, m, s)
    out["total_s"] = round(time.perf_counter() - t_start, 1)
    if args.save:
        Path(args.save).write_text(json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))
    if args.markdown:
        print(markdown(out))


def markdown(out: dict) -> str:
    """One row per (case, role): mean ± sd over seeds of accuracy, the latencies' medians over seeds."""
    import numpy as np

    groups = {}
    for r in out["rows"]:
        groups.setdefault((r["case"], r["role"]), []).append(r)
    lines = ["| case | model | seeds | params | px | accuracy % | int8 accuracy % | PyTorch ms b1 / b32 "
             "| ORT fp32 ms b1 / b32 | ORT int8 ms b1 / b32 | fit s |", "|---|---|---:|---:|---:|---:|---:|---|---|---|---:|"]
    for (case, role), rows in groups.items():
        def ms(key):
            v = [r[key] for r in rows]
            return f"{np.mean(v):.1f} ± {np.std(v, ddof=1):.1f}" if len(v) > 1 else f"{v[0]:.1f}"

        def lat(kind):
            return " / ".join(f"{np.median([r[f'{kind}_ms_b{b}'] for r in rows]):.1f}" for b in (1, 32))

        lines.append(f"| {case} | {role} | {len(rows)} | {rows[0]['params'] / 1e6:.2f} M | {rows[0]['input_px']} "
                     f"| {ms('accuracy')} | {ms('accuracy_int8')} | {lat('pytorch')} | {lat('ort_fp32')} "
                     f"| {lat('ort_int8')} | {np.mean([r['fit_s'] for r in rows]):.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
