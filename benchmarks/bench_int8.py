"""int8 on the fine-tuned Lite0, as a user gets it: fp32 against static and dynamic int8 in ONNX Runtime (issue 28
stage 3).

The model is what ``transferkit fit -s finetune --backbone timm:tf_efficientnet_lite0 --data hymenoptera:train``
writes (its defaults, seed 0; ``--model DIR`` reuses a saved one). It is exported to ONNX and quantised twice with
onnxruntime:

  static    QDQ, int8 weights per channel, uint8 activations with MinMax ranges calibrated on 256 (here all 244)
            training photos: what ``transferkit export --int8 --calibration DATA`` writes
  dynamic   int8 weights, activations quantised at run time (ConvInteger + DynamicQuantizeLinear): what
            ``export --int8`` wrote before issue 28

Lite0's stride-2 convolutions pad TensorFlow's 'same' way, from the input's shape at run time; the export now fixes
those pads for the input size (``export.static_same_padding``). The rows marked "run-time pads" export the model as
before, to show what that changes.

For each file: accuracy on the 153 val photos, the predictions that differ from fp32 (flips), the file size, and CPU
latency per image at batch 1 and 32 for each ``--threads``, beside PyTorch eager. The latencies are measured in
``--rounds`` interleaved rounds (every runtime once per round, median of each round's median), so a busy spell on
this shared machine hits all of them alike.

    TRANSFERKIT_DATA=../shared/data python benchmarks/bench_int8.py --threads 1 2 --markdown   # ~6 min

Prints one JSON object (``--markdown``: a table instead); ``--save PATH`` writes the JSON too.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FIT = ["fit", "-s", "finetune", "--backbone", "timm:tf_efficientnet_lite0", "--data", "hymenoptera:train",
       "--test", "hymenoptera:val", "--seed", "0", "--no-progress"]
RUNTIMES = ("pytorch", "fp32", "static", "dynamic", "fp32-runtime-pads", "static-runtime-pads")
INT8 = {"static": "fp32", "dynamic": "fp32", "static-runtime-pads": "fp32-runtime-pads"}  # int8 file -> its fp32


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def fitted_model(work: Path, given: str | None) -> Path:
    if given:
        return Path(given)
    log("fitting: transferkit " + " ".join(FIT))
    subprocess.run([sys.executable, "-m", "transferkit", *FIT, "--out", str(work / "fit")], check=True,
                   stdout=subprocess.DEVNULL)
    return work / "fit" / "model"


def latencies(strategy, files: dict, shape, threads: int, batch: int, rounds: int) -> dict:
    """ms per image of each runtime, the median over ``rounds`` interleaved rounds."""
    import numpy as np

    from transferkit import export as ex

    per = {k: [] for k in RUNTIMES}
    repeats = 10 if batch == 1 else 3
    for _ in range(rounds):
        per["pytorch"].append(ex.measure_latency(strategy, batch, threads=threads, repeats=repeats, min_time=0.5))
        for k in RUNTIMES[1:]:
            per[k].append(ex.measure_onnx_latency(files[k], shape, batch, threads=threads, repeats=repeats,
                                                  min_time=0.5))
    return {k: round(float(np.median(v)), 2) for k, v in per.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="a saved model directory (default: fit one as described)")
    ap.add_argument("--calibration", default="hymenoptera:train")
    ap.add_argument("--test", default="hymenoptera:val")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--save", default=None)
    args = ap.parse_args()

    import numpy as np
    import onnx

    from transferkit import export as ex
    from transferkit.data import load_dataset
    from transferkit.strategies import Strategy

    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        strategy = Strategy.load(fitted_model(work, args.model))
        cfg = ex.data_config_of(strategy)
        calib, test = strategy.prepare(load_dataset(args.calibration)), strategy.prepare(load_dataset(args.test))
        files = {"fp32": str(work / "model.onnx"), "fp32-runtime-pads": str(work / "model.runtime-pads.onnx")}
        ex.export_onnx(strategy, files["fp32"])
        fixed_pads, ex.static_same_padding = ex.static_same_padding, lambda module, x: module  # the export as before
        try:
            ex.export_onnx(strategy, files["fp32-runtime-pads"])
        finally:
            ex.static_same_padding = fixed_pads
        out = {"model": args.model or "transferkit " + " ".join(FIT), "test": f"{args.test} ({len(test)} images)",
               "calibration": f"{min(256, len(calib))} images of {args.calibration}", "files": {}, "latency_ms": {}}
        for key, src in INT8.items():
            files[key] = str(work / f"model.{key}.onnx")
            t0 = time.perf_counter()
            ex.quantize_onnx(files[src], files[key], mode=key.split("-")[0], calibration=calib, data_config=cfg)
            out["files"][key] = {"quantise_s": round(time.perf_counter() - t0, 1)}
        proba = {"pytorch": strategy.predict_proba(test)}
        for k, path in files.items():
            proba[k] = ex.onnx_predict_proba(path, test, cfg)
            ops = {n.op_type for n in onnx.load(path).graph.node}
            out["files"].setdefault(k, {}).update(
                size_mb=round(Path(path).stat().st_size / 1e6, 2),
                int8_ops=sorted(ops & {"QLinearConv", "QuantizeLinear", "DequantizeLinear", "ConvInteger",
                                       "DynamicQuantizeLinear", "MatMulInteger"}))
        for k, p in proba.items():
            r = out["files"].setdefault(k, {})
            r["accuracy"] = round(100 * float(np.mean(p.argmax(1) == test.labels)), 2)
            ref = proba[INT8.get(k, "fp32")]
            r["flips_vs_fp32"] = int(np.sum(p.argmax(1) != ref.argmax(1)))
            r["max_abs_proba_diff"] = round(float(np.abs(p - ref).max()), 4)
        log(json.dumps(out["files"]))
        shape = tuple(cfg["input_size"])
        for t in args.threads:
            for b in args.batches:
                out["latency_ms"][f"{t}t-b{b}"] = lat = latencies(strategy, files, shape, t, b, args.rounds)
                log(f"{t} threads, batch {b}: {lat}")
                if args.save:
                    Path(args.save).write_text(json.dumps(out, indent=2))
    ru = resource.getrusage(resource.RUSAGE_SELF)
    out["cost"] = {"wall_s": round(time.perf_counter() - t_all, 1), "user_s": round(ru.ru_utime, 1),
                   "system_s": round(ru.ru_stime, 1), "peak_rss_gib": round(ru.ru_maxrss / 2**20, 2)}
    if args.save:
        Path(args.save).write_text(json.dumps(out, indent=2))
    print(markdown(out) if args.markdown else json.dumps(out, indent=2))


LABELS = {"pytorch": "PyTorch eager fp32", "fp32": "ONNX Runtime fp32", "static": "ONNX Runtime static int8 (QDQ)",
          "dynamic": "ONNX Runtime dynamic int8", "fp32-runtime-pads": "ONNX Runtime fp32, run-time pads (before)",
          "static-runtime-pads": "ONNX Runtime static int8, run-time pads (before)"}


def markdown(out: dict) -> str:
    keys = list(out["latency_ms"])
    head = ("| runtime | val accuracy (%) | flips vs fp32 | size | "
            + " | ".join(f"ms/image, {k.split('-')[0][:-1]} thr., batch {k.split('-b')[1]}" for k in keys) + " |")
    lines = [head, "|---|---:|---:|---:|" + "---:|" * len(keys)]
    for k in RUNTIMES:
        f = out["files"][k]
        size = f"{f['size_mb']:.2f} MB" if "size_mb" in f else ""
        cells = []
        for key in keys:
            lat = out["latency_ms"][key]
            speed = f" ({lat[INT8[k]] / lat[k]:.2f}x)" if k in INT8 else ""
            cells.append(f"{lat[k]:.1f}{speed}")
        lines.append(f"| {LABELS[k]} | {f['accuracy']:.1f} | {f['flips_vs_fp32']} | {size} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
