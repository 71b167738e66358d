"""Which fine-tuning recipe should be the default? Candidates from the literature on the hymenoptera photos,
through the command line a user types, at 224 px, with several seeds.

Every run is ``transferkit fit --data hymenoptera:train --test hymenoptera:val --backbone
timm:tf_efficientnet_lite0 -s finetune --seed S`` plus the candidate's ``--param``s, in a fresh process; the
row records the val accuracy from ``result.json``, the wall-clock time of the whole command (start-up, data,
training, evaluation), its user and system CPU time and its peak RSS (``wait4``). The candidates were fixed
before any result was seen:

  today       the defaults before issue 23: AdamW 1e-3 on every layer, 10 epochs, batch 64, cosine, no
              warm-up, no head-first phase, no layer-wise rates
  fastai      fastai's ``fine_tune``: the head on the frozen body for one epoch, then every layer with
              discriminative rates from base/100 (stem) to base (head), one-cycle schedule; 6 epochs, batch 32
  lp-ft       LP-FT (Kumar et al. 2022): the head alone for 3 epochs, then everything at a 10x smaller rate
              for the body (1e-4, head 1e-3), cosine; 6 epochs, batch 32
  fastai-ls   ``fastai`` with label smoothing 0.1 (Szegedy et al. 2016)

Added after the first seed, for a reason found in stage 1 rather than in its results: the training memory budget
trains a batch of 32 at 224 px as micro-batches of about 10, so BatchNorm layers in training mode normalise by
the statistics of 10 photos. Freezing every BatchNorm (running statistics and affine parameters, as detection
fine-tuning does with ``FrozenBatchNorm2d``) makes gradient accumulation exact and the recipe independent of the
memory budget:

  lp-ft-bn    ``lp-ft`` with ``bn_policy=frozen``
  fastai-bn   ``fastai`` with ``bn_policy=frozen``
  defaults    no parameter at all: the defaults chosen from this table (``lp-ft-bn``, written as lr 1e-3 with
              the body at 0.1x: the same rates), run after choosing them

Rows are appended to ``--out`` (JSON lines) as they finish; a rerun skips the rows already there.
``--report`` prints the mean +- sd table.

    python benchmarks/bench_finetune_recipes.py --seeds 0 1 2 --out benchmarks/results/finetune-recipes.jsonl
    python benchmarks/bench_finetune_recipes.py --report --out benchmarks/results/finetune-recipes.jsonl
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BACKBONE = "timm:tf_efficientnet_lite0"
# What every candidate ran with before the recipe had its own defaults (pinned, so a rerun means the same thing)
PLAIN = {"backbone_lr_mult": 1.0, "bn_policy": "eval"}
FASTAI = {**PLAIN, "epochs": 6, "batch_size": 32, "lp_epochs": 1, "lr": 1e-3, "lr_decay": 0.56, "scheduler": "onecycle"}
LPFT = {**PLAIN, "epochs": 6, "batch_size": 32, "lp_epochs": 3, "lr": 1e-4, "head_lr_mult": 10.0, "lr_decay": 1.0,
        "scheduler": "cosine"}
CANDIDATES = {
    "today": {**PLAIN, "epochs": 10, "batch_size": 64, "lr": 1e-3, "lr_decay": 1.0, "lp_epochs": 0, "scheduler": "cosine",
              "warmup_epochs": 0.0, "label_smoothing": 0.0},
    "fastai": FASTAI,
    "lp-ft": LPFT,
    "fastai-ls": {**FASTAI, "label_smoothing": 0.1},
    "lp-ft-bn": {**LPFT, "bn_policy": "frozen"},
    "fastai-bn": {**FASTAI, "bn_policy": "frozen"},
    "defaults": {},
}


def run_one(name: str, seed: int, threads: int) -> dict:
    exe = Path(sys.executable).with_name("transferkit")
    out = Path(tempfile.mkdtemp(prefix=f"recipe-{name}-"))
    cmd = [str(exe), "fit", "--data", "hymenoptera:train", "--test", "hymenoptera:val", "--backbone", BACKBONE,
           "-s", "finetune", "--seed", str(seed), "--out", str(out / "run"), "--no-progress"]
    for k, v in CANDIDATES[name].items():
        cmd += ["--param", f"{k}={v}"]
    env = {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    err = proc.stderr.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{err[-3000:]}")
    result = json.loads((out / "run" / "result.json").read_text())
    shutil.rmtree(out, ignore_errors=True)
    m = result["metrics"]
    return {"candidate": name, "seed": seed, "params": CANDIDATES[name], "val_accuracy": m["accuracy"],
            "wall_s": round(wall, 1), "user_s": round(ru.ru_utime, 1), "system_s": round(ru.ru_stime, 1),
            "peak_rss_gib": round(ru.ru_maxrss / 2**20, 2), "fit_s": result.get("timings", {}).get("fit_s"),
            "effective_params": {k: result["params"].get(k) for k in ("epochs", "batch_size", "lr", "lr_decay",
                                                                       "lp_epochs", "scheduler", "label_smoothing",
                                                                       "head_lr_mult", "warmup_epochs", "bn_policy")},
            "micro_batch_size": result.get("extra", {}).get("micro_batch_size"), "threads": threads or "default"}


def report(rows: list[dict]) -> str:
    by = {}
    for r in rows:
        by.setdefault(r["candidate"], []).append(r)
    lines = ["| recipe | val accuracy (%) | per seed | wall-clock | user / system CPU | peak RSS |",
             "|---|---:|---|---:|---:|---:|"]
    for name in [c for c in CANDIDATES if c in by]:
        rs = sorted(by[name], key=lambda r: r["seed"])
        acc = [100 * r["val_accuracy"] for r in rs]
        sd = statistics.stdev(acc) if len(acc) > 1 else 0.0
        mean = lambda k: statistics.mean(r[k] for r in rs)  # noqa: E731
        lines.append(f"| {name} | {statistics.mean(acc):.1f} ± {sd:.1f} | {', '.join(f'{a:.1f}' for a in acc)} | "
                     f"{mean('wall_s'):.0f} s | {mean('user_s'):.0f} s / {mean('system_s'):.0f} s | "
                     f"{max(r['peak_rss_gib'] for r in rs):.2f} GiB |")
    seeds = sorted({r["seed"] for r in rows})
    return "\n".join(lines) + f"\n\nval accuracy on 153 photos, mean ± sd over seeds {seeds}; times are means, RSS the max.\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--candidates", nargs="+", default=[c for c in CANDIDATES if c != "defaults"],
                    choices=list(CANDIDATES))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--threads", type=int, default=0, help="OMP_NUM_THREADS of each run (0: torch's default)")
    ap.add_argument("--out", default="benchmarks/results/finetune-recipes.jsonl")
    ap.add_argument("--report", action="store_true", help="print the table of --out and stop")
    args = ap.parse_args()
    path = Path(args.out)
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    if not args.report:
        done = {(r["candidate"], r["seed"]) for r in rows}
        path.parent.mkdir(parents=True, exist_ok=True)
        for seed in args.seeds:  # seed-major: a partial file already compares every candidate
            for name in args.candidates:
                if (name, seed) in done:
                    continue
                row = run_one(name, seed, args.threads)
                rows.append(row)
                with path.open("a") as fh:
                    fh.write(json.dumps(row) + "\n")
                print(json.dumps(row), file=sys.stderr, flush=True)
    print(report(rows))


if __name__ == "__main__":
    main()
