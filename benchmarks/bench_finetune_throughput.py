"""Fine-tuning throughput (images/s): transferkit's FineTune (the one Trainer, Lightning Fabric) against a bare
PyTorch loop on the same model, batch, data loader, optimizer, schedule and precision. Prints JSON.

CPU (here):   python benchmarks/bench_finetune_throughput.py --backbone builtin:small-cnn --size 32
Lite0, CPU:   TRANSFERKIT_TRAIN_MEMORY_MB=inf python benchmarks/bench_finetune_throughput.py \
                  --backbone timm:tf_efficientnet_lite0 --size 224 --batch-size 32 --steps 5 --epochs 2 --repeats 1
              (run it under each allocator: TRANSFERKIT_MALLOC=default, the default, LD_PRELOAD=libtcmalloc_minimal.so.4)
GPU (lent):   python benchmarks/bench_finetune_throughput.py --device cuda --backbone timm:resnet50 --size 224 \
                  --channels-last --precision bf16-mixed --synthetic --batch-size 128 --steps 40

Both sides read the same synthetic uint8 images through the same ``make_loader`` (vectorised batches), so the
ratio measures the training loop itself. Each side runs ``--repeats`` times, interleaved; the first epoch of
each run is a warm-up and is not timed; the reported figure is the median over repeats. ``cpu_ratio`` compares
images per CPU-second of the process (whole runs), which stays meaningful when other jobs share the cores.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np
import torch
from torch import nn


def synthetic(n: int, size: int, classes: int, seed: int = 0):
    from transferkit.data import from_arrays

    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)
    labels = rng.integers(0, classes, size=n)
    return from_arrays(images, labels, [str(c) for c in range(classes)], name=f"synthetic{size}")


def run_transferkit(args, data) -> tuple:
    """(images/s over the timed epochs, images per CPU-second, the micro-batch the memory budget chose or None)."""
    from transferkit.strategies.reuse.finetune import FineTune

    # augment='none': the bare loop applies none either. The physical batch is what the training memory budget
    # gives ($TRANSFERKIT_TRAIN_MEMORY_MB; 'inf' trains the whole batch at once, like the bare loop)
    m = FineTune(backbone=args.backbone, pretrained=False, epochs=args.epochs, batch_size=args.batch_size, lr=1e-3,
                 precision=args.precision, accelerator="cuda" if args.device == "cuda" else "cpu",
                 channels_last=args.channels_last, progress=False, input_size=args.size, augment="none")
    c0 = time.process_time()
    m.fit(data)
    cpu = time.process_time() - c0
    times = [h["time_s"] for h in m.history_[1:]]
    steps = len(data) // args.batch_size
    return steps * args.batch_size * len(times) / sum(times), steps * args.batch_size * args.epochs / cpu, m.micro_batch_size_


def run_bare(args, data) -> tuple:
    """The same work written as a plain loop: model, AdamW, cosine LambdaLR, autocast, channels_last."""
    import math

    from transferkit.backbones import create_backbone
    from transferkit.data import ImageTransform
    from transferkit.engine import make_loader
    from transferkit.strategies.base import Classifier

    torch.manual_seed(0)
    dev = torch.device(args.device)
    bb = create_backbone(args.backbone, pretrained=False, input_size=args.size)
    model = Classifier(bb, args.classes).to(dev)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    loader = make_loader(data.with_transform(ImageTransform(bb.data_config, train=True)), args.batch_size,
                         shuffle=True, drop_last=True)
    total = len(loader) * args.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(1.0, s / total))))
    amp = args.precision in ("bf16-mixed", "16-mixed")
    dtype = torch.bfloat16 if args.precision.startswith("bf16") else torch.float16
    scaler = torch.amp.GradScaler(enabled=args.precision == "16-mixed")
    times = []
    c0 = time.process_time()
    for epoch in range(args.epochs):
        model.train()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for x, y in loader:
            x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
            if args.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(dev.type, dtype=dtype, enabled=amp):
                loss = nn.functional.cross_entropy(model(x), y)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            opt.zero_grad(set_to_none=True)
            sched.step()
            float(loss.detach())  # the Trainer reads the loss every step; so does this loop
        if dev.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    cpu = time.process_time() - c0
    times = times[1:]
    return len(loader) * args.batch_size * len(times) / sum(times), len(loader) * args.batch_size * args.epochs / cpu, None


def process_usage() -> dict:
    """The allocator this process runs on, its user and system CPU seconds and its peak RSS (whole process)."""
    import resource

    from transferkit.engine.allocator import allocator_name

    ru = resource.getrusage(resource.RUSAGE_SELF)
    cpu = ru.ru_utime + ru.ru_stime
    return {"allocator": allocator_name(), "user_s": round(ru.ru_utime, 1), "system_s": round(ru.ru_stime, 1),
            "system_share": round(ru.ru_stime / cpu, 3) if cpu else None,
            "minor_faults": ru.ru_minflt, "peak_rss_gib": round(ru.ru_maxrss / 2**20, 2)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--backbone", default="builtin:small-cnn")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20, help="steps per epoch")
    ap.add_argument("--epochs", type=int, default=3, help="epochs per run (the first is warm-up)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--precision", default="32-true")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--synthetic", action="store_true", help="synthetic images (the only data source; kept for clarity)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave the default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = synthetic(args.steps * args.batch_size, args.size, args.classes)
    bare, tk, bare_cpu, tk_cpu = [], [], [], []
    micro = None
    for _ in range(args.repeats):
        for fn, wall, cpu in ((run_bare, bare, bare_cpu), (run_transferkit, tk, tk_cpu)):
            w, c, m = fn(args, data)
            wall.append(w)
            cpu.append(c)
            micro = m if m is not None else micro
    out = {
        "benchmark": "finetune_throughput", "device": args.device,
        "device_name": torch.cuda.get_device_name() if args.device == "cuda" else "cpu",
        "torch_threads": torch.get_num_threads(), "backbone": args.backbone, "size": args.size,
        "batch_size": args.batch_size, "steps_per_epoch": args.steps, "precision": args.precision,
        "channels_last": args.channels_last, "transferkit_micro_batch_size": micro,
        "train_memory_mb": os.environ.get("TRANSFERKIT_TRAIN_MEMORY_MB", "default"),
        "bare_images_per_s": statistics.median(bare), "transferkit_images_per_s": statistics.median(tk),
        "bare_runs": bare, "transferkit_runs": tk,
        "ratio": statistics.median(tk) / statistics.median(bare),
        "ratio_per_repeat": [t / b for t, b in zip(tk, bare)],
        # images per CPU-second of the process over whole runs (warm-up epoch and setup included): robust to
        # other processes competing for the cores, which distort the wall-clock figures on a shared machine
        "bare_images_per_cpu_s": statistics.median(bare_cpu), "transferkit_images_per_cpu_s": statistics.median(tk_cpu),
        "cpu_ratio": statistics.median(tk_cpu) / statistics.median(bare_cpu),
    }
    out.update(process_usage())
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
