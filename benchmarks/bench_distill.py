"""Distillation on Fashion-MNIST: teacher vs student-from-scratch vs distilled student; export and int8.

Prints one JSON object. Reproduce (the figures in benchmarks/sections/tasks-and-distillation.md; 2 shared CPU cores):
    .venv/bin/python benchmarks/bench_distill.py --n-train 3000 --n-test 2000 --epochs 3
Latency: PyTorch eager on CPU, 1 intra-op thread, median per image at batch 1 and 64.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np
import torch

from transferkit.data import k_per_class, load_fashion_mnist
from transferkit.export import quantization_report
from transferkit.strategies.distill import Distill, distillation_report
from transferkit.strategies.finetune import FineTune


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-train", type=int, default=10000)
    ap.add_argument("--n-test", type=int, default=10000)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--teacher", default="builtin:tiny-resnet")
    ap.add_argument("--student", default="builtin:micro-cnn")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quant-teacher", action="store_true", help="also quantise the teacher")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    train = k_per_class(load_fashion_mnist("train", download=False), a.n_train // 10, seed=a.seed)
    test = load_fashion_mnist("test", download=False)
    if a.n_test < len(test):
        test = k_per_class(test, a.n_test // 10, seed=a.seed)
    common = dict(pretrained=False, input_size=28, batch_size=64, epochs=a.epochs, seed=a.seed, progress=False)
    t0 = time.perf_counter()
    teacher = FineTune(backbone=a.teacher, lr=2e-3, **common).fit(train)
    scratch = FineTune(backbone=a.student, lr=5e-3, **common).fit(train)
    distilled = Distill(teacher=teacher, backbone=a.student, lr=5e-3, temperature=4.0, alpha=0.9, **common).fit(train)
    rep = distillation_report(teacher, distilled, test, scratch=scratch, batch_sizes=(1, 64), threads=1)
    rep["fit_s"] = {"teacher": teacher.fit_time_, "student_scratch": scratch.fit_time_,
                    "student_distilled": distilled.fit_time_, "teacher_cache_s": distilled.teacher_cache_s_}
    with tempfile.TemporaryDirectory() as d:
        rep["int8_static_student"] = quantization_report(distilled, test, d + "/s", mode="static", calibration=train)
        if a.quant_teacher:
            rep["int8_static_teacher"] = quantization_report(teacher, test, d + "/t", mode="static", calibration=train)
    rep["config"] = {**vars(a), "n_train_actual": len(train), "n_test_actual": len(test),
                     "total_s": time.perf_counter() - t0, "torch": torch.__version__}
    print(json.dumps(rep, indent=1, default=float))


if __name__ == "__main__":
    main()
