"""PGD-10 throughput of transferkit's attack vs a straightforward reference loop; prints JSON.

The reference is the textbook loop (``loss.backward()`` each step, accumulating weight gradients, model.zero_grad).
transferkit's ``pgd`` switches weight gradients off during the attack and takes ``autograd.grad`` w.r.t. the
input only. Target: ratio >= 1.0.

    python benchmarks/bench_attacks.py [--backbone builtin:small-cnn] [--size 32] [--batch 128] [--repeats 3]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from transferkit.backbones import create_backbone
from transferkit.robustness import pgd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from reference_attacks import reference_pgd  # noqa: E402  (the textbook loop lives with the tests)
from transferkit.strategies import Classifier
from transferkit.utils import environment


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--backbone", default="builtin:small-cnn")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--eps", type=float, default=8 / 255)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = ap.parse_args()
    torch.manual_seed(0)
    model = Classifier(create_backbone(a.backbone, input_size=a.size), 10).to(a.device).eval()
    x = torch.rand(a.batch, 3, a.size, a.size, device=a.device)
    y = torch.randint(0, 10, (a.batch,), device=a.device)
    alpha = 2.5 * a.eps / a.steps

    def timed(fn):
        fn()  # warm-up
        best = float("inf")
        for _ in range(a.repeats):
            if a.device.startswith("cuda"):
                torch.cuda.synchronize()
            t = time.perf_counter()
            fn()
            if a.device.startswith("cuda"):
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - t)
        return a.batch / best

    ours = timed(lambda: pgd(model, x, y, eps=a.eps, steps=a.steps, step_size=alpha))
    ref = timed(lambda: reference_pgd(model, x, y, a.eps, a.steps, alpha))
    print(json.dumps({"benchmark": "pgd_throughput", "backbone": a.backbone, "input": a.size, "batch": a.batch,
                      "steps": a.steps, "eps": a.eps, "device": a.device, "threads": torch.get_num_threads(),
                      "transferkit_img_per_s": round(ours, 1), "reference_img_per_s": round(ref, 1),
                      "ratio": round(ours / ref, 3), "target_ratio": ">= 1.0",
                      "environment": {k: environment()[k] for k in ("torch", "cpu_count", "cuda")}}, indent=1))


if __name__ == "__main__":
    main()
