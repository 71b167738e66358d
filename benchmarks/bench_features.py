"""Feature extraction: transferkit's extract_features vs a bare ``torch.inference_mode`` loop.

The bare loop runs the same backbone over tensors already preloaded and transformed in memory; transferkit
starts from the uint8 dataset (its vectorised array path), writes the cache, and a second call reads it.

    python benchmarks/bench_features.py                       # Fashion-MNIST test (10k), builtin:small-cnn, CPU
    python benchmarks/bench_features.py --backbone timm:resnet50 --size 224 --device cuda --n 20000

Prints one JSON object: images/s of both, their ratio (target >= 0.9), and the cached pass speed-up (target >= 50).
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch

from transferkit.backbones import create_backbone
from transferkit.data import ImageTransform, load_digits, load_fashion_mnist
from transferkit.engine import extract_features


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", default="builtin:small-cnn")
    ap.add_argument("--size", type=int, default=None, help="input size override")
    ap.add_argument("--dataset", default="fashion-mnist", choices=["fashion-mnist", "digits"])
    ap.add_argument("--n", type=int, default=10_000, help="number of images")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=3, help="best of N timings for each side")
    args = ap.parse_args()

    ds = load_fashion_mnist("all", download=False) if args.dataset == "fashion-mnist" else load_digits()
    ds = ds.subset(torch.arange(min(args.n, len(ds))).numpy())
    bb = create_backbone(args.backbone, pretrained=False, input_size=args.size).eval().to(args.device)
    t = ImageTransform(bb.data_config)
    from transferkit.data.images import array_to_chw

    x_all = t.batch(torch.from_numpy(array_to_chw(ds.images)))  # preloaded, transformed
    if args.device != "cpu":
        x_all = x_all.to(args.device)

    def bare():
        with torch.inference_mode():
            for i in range(0, len(x_all), args.batch_size):
                out = bb(x_all[i:i + args.batch_size].to(args.device))
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
        return out

    def timed(fn):
        best = float("inf")
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
        return best

    bare()  # warm-up
    t_bare = timed(bare)
    with tempfile.TemporaryDirectory() as cache:
        def first():
            for f in __import__("pathlib").Path(cache).glob("*.npy"):
                f.unlink()
            extract_features(bb, ds, batch_size=args.batch_size, cache=cache, device=args.device, progress=False)

        t_first = timed(first)
        t_cached = timed(lambda: extract_features(bb, ds, batch_size=args.batch_size, cache=cache, device=args.device, progress=False))
    n = len(ds)
    print(json.dumps({
        "benchmark": "feature_extraction", "backbone": args.backbone, "dataset": args.dataset, "n_images": n,
        "input_size": list(bb.data_config["input_size"]), "batch_size": args.batch_size, "device": args.device,
        "torch_threads": torch.get_num_threads(),
        "bare_images_per_s": round(n / t_bare, 1), "transferkit_images_per_s": round(n / t_first, 1),
        "ratio_vs_bare": round(t_bare / t_first, 3),
        "cached_pass_s": round(t_cached, 4), "first_pass_s": round(t_first, 3),
        "cached_speedup": round(t_first / t_cached, 1),
    }, indent=2))


if __name__ == "__main__":
    main()
