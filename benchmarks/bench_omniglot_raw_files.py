"""Few-shot on the original Omniglot PNG files, as a user gives them (issue 28 stage 1).

A user trains ProtoNet on ``omniglot:background_small1?invert=true&image_size=28`` (the loader inverts the strokes
to white on black and area-resizes to 28 px), saves it, and later classifies characters given as the original
105x105 black-on-white PNG files. Before the model carried its training data's preprocessing, those files reached
it un-inverted: 71.8% error at 20-way 1-shot against 20.8% on the loader's arrays (issue 28's report).

Measured here, on the same saved model and the same episodes (seed 0), 20-way 1-shot with 15 queries per class on
the 106 characters of small2's alphabets that small1 lacks (Japanese_(katakana), Sanskrit, Tagalog):

  arrays            the loader's arrays (inverted, 28 px)
  raw files         the original PNG files, unpacked from the zip; the saved model redoes its preprocessing
  raw files, as before   the same files with the preprocessing switched off (what the model saw before)

ProtoNet: ``builtin:small-cnn`` from scratch, 20-way 5-shot 5-query training episodes, ``--epochs`` x 100 of
them, Adam 1e-3, no rotations (a budget for the check, not for the best accuracy: bench_omniglot.py has that).

    python benchmarks/bench_omniglot_raw_files.py --threads 1 --markdown      # ~5 min on 1 CPU thread
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import zipfile
from pathlib import Path

SHARED = ["Greek", "Latin"]  # in small1 and small2 alike: not test classes


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def raw_files(arrays, into: Path):
    """The loader's dataset as the original PNG files of its zip (same order, labels and classes)."""
    from transferkit.data import ImageDataset

    with zipfile.ZipFile(arrays.root) as z:  # the loader reads the zip's PNG members in sorted order
        names = sorted(n for n in z.namelist() if n.lower().endswith(".png") and n.count("/") >= 2
                       and n.split("/")[-3] not in SHARED)
        z.extractall(into, members=names)
    files = [str(into / n) for n in names]
    assert len(files) == len(arrays) and all(
        f"{Path(f).parent.parent.name}/{Path(f).parent.name}" == arrays.classes[label]
        for f, label in zip(files, arrays.labels)), "the files do not line up with the loader's images"
    return ImageDataset(files, arrays.labels, arrays.classes, name="omniglot-small2-png")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=5, help="ProtoNet epochs of 100 training episodes")
    ap.add_argument("--episodes", type=int, default=600, help="test episodes")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()

    import resource

    import torch

    torch.set_num_threads(args.threads)
    from transferkit.data import load_dataset
    from transferkit.strategies import Strategy, create_strategy

    t0, c0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    train = load_dataset("omniglot:background_small1?invert=true&image_size=28")
    test = load_dataset(f"omniglot:background_small2?invert=true&image_size=28&exclude_alphabets={','.join(SHARED)}")
    log(f"train {len(train)} images / {len(train.classes)} classes; test {len(test)} / {len(test.classes)}")
    model = create_strategy("protonet", backbone="builtin:small-cnn", input_size=28, n_way=20, k_shot=5, q_queries=5,
                            episodes_per_epoch=100, epochs=args.epochs, lr=1e-3, seed=0, progress=False).fit(train)
    fit_s = time.perf_counter() - t0
    out = {"epochs": args.epochs, "episodes": args.episodes, "seed": 0, "fit_s": round(fit_s, 1), "rows": {}}
    with tempfile.TemporaryDirectory() as tmp:
        saved = Strategy.load(model.save(Path(tmp) / "model"))  # as a user has it: saved, then loaded
        files = raw_files(test, Path(tmp) / "png")
        for row, data in (("arrays", test), ("raw files", files),
                          ("raw files, as before", files.with_preprocess({"invert": False}))):
            r = saved.evaluate(data, n_way=20, k_shot=1, q_queries=15, episodes=args.episodes, seed=0)
            out["rows"][row] = {"error": round(100 * (1 - r["accuracy"]), 2), "ci95": round(100 * r["ci95"], 2)}
            log(f"  {row}: {out['rows'][row]}")
    use = resource.getrusage(resource.RUSAGE_SELF)
    out.update(wall_s=round(time.perf_counter() - t0, 1), user_s=round(use.ru_utime - c0.ru_utime, 1),
               sys_s=round(use.ru_stime - c0.ru_stime, 1), peak_rss_mb=round(use.ru_maxrss / 1024))
    if args.markdown:
        print("| input at prediction | 20-way 1-shot error (%) | 95% CI |\n|---|---:|---:|")
        for row, v in out["rows"].items():
            print(f"| {row} | {v['error']:.1f} | ± {v['ci95']:.1f} |")
        print(f"\n{json.dumps({k: v for k, v in out.items() if k != 'rows'})}")
    else:
        print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
