"""Peak memory of feature extraction (issue 8, bounded memory): engine.extract_features over Fashion-MNIST
streams embeddings batch by batch into the on-disk cache, so the extra memory it needs should not grow
with the number of images.

Each measurement runs in a fresh subprocess: it loads the data and the backbone, records its resident
memory (VmRSS), resets the kernel's peak counter (/proc/self/clear_refs), extracts the features into a
fresh cache directory, then reports the peak resident memory during extraction (VmHWM) and the
whole-process peak (getrusage ru_maxrss). Prints one JSON document.

    python benchmarks/bench_memory.py                       # 10k and 70k images, builtin:small-cnn
    python benchmarks/bench_memory.py --sizes 70000 --backbone builtin:tiny-resnet --batch-size 512
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def child(n: int, backbone: str, batch_size: int, cache: str) -> dict:
    import numpy as np
    import torch

    from transferkit.backbones import create_backbone
    from transferkit.data import load_fashion_mnist
    from transferkit.engine import extract_features

    ds = load_fashion_mnist("all", download=False)
    if n < len(ds):
        ds = ds.subset(np.arange(n))
    bb = create_backbone(backbone, pretrained=False)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    # warm-up on a few images (allocator pools, lazy imports) so the peak below is extraction itself
    extract_features(bb, ds.subset(np.arange(min(batch_size, len(ds)))), batch_size=batch_size, cache=False,
                     progress=False)
    before = _status_kib("VmRSS")
    try:  # reset the peak-RSS counter (VmHWM) to the current RSS (Linux >= 4.0)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        reset = True
    except OSError:
        reset = False
    t0 = time.perf_counter()
    feats = extract_features(bb, ds, batch_size=batch_size, cache=cache, progress=False)
    seconds = time.perf_counter() - t0
    peak = _status_kib("VmHWM")
    (cache_file,) = [os.path.join(cache, f) for f in os.listdir(cache) if f.endswith(".npy")]
    return {
        "images": len(ds), "backbone": backbone, "embedding_dim": int(feats.shape[1]), "batch_size": batch_size,
        "rss_before_mib": round(before / 1024, 1), "peak_rss_during_mib": round(peak / 1024, 1),
        "extra_peak_mib": round((peak - before) / 1024, 1) if reset else None,
        "process_max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "dataset_in_memory_mib": round(ds.images.nbytes / 2**20, 1),
        "embeddings_mib": round(feats.shape[0] * feats.shape[1] * 4 / 2**20, 1),
        "cache_file_mib": round(os.path.getsize(cache_file) / 2**20, 1),
        "seconds": round(seconds, 2), "images_per_s": round(len(ds) / seconds, 1), "peak_reset": reset,
        "threads": torch.get_num_threads(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,70000", help="comma-separated image counts (max 70000)")
    ap.add_argument("--backbone", default="builtin:small-cnn")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--cache", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.child, args.backbone, args.batch_size, args.cache)))
        return
    from transferkit.utils import environment

    runs = []
    for n in [int(s) for s in args.sizes.split(",")]:
        with tempfile.TemporaryDirectory() as cache:
            out = subprocess.run([sys.executable, __file__, "--child", str(n), "--backbone", args.backbone,
                                  "--batch-size", str(args.batch_size), "--cache", cache],
                                 capture_output=True, text=True, check=True)
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(json.dumps({"benchmark": "feature-extraction-peak-rss", "runs": runs, "environment": environment()}, indent=2))


if __name__ == "__main__":
    main()
