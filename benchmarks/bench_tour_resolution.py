"""Does the tour's limited-labels verdict hold at Lite0's native 224 px? Runs the situation (hymenoptera, ImageNet
EfficientNet-Lite0, 5 labels per class and all of them, one seed) at each ``--sizes`` and prints JSON: per size
the accuracies, the winner and tied candidates at each point of the curve, and the wall time.

    TRANSFERKIT_DATA=../shared/data python benchmarks/bench_tour_resolution.py --sizes 160 224 --threads 2
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[160, 224])
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    import torch

    from transferkit.engine.verdict import decide
    from transferkit.tour import SHARED, Context, list_situations

    torch.set_num_threads(a.threads)
    situation = list_situations()["limited-labels"]
    out = {}
    for size in a.sizes:
        with tempfile.TemporaryDirectory() as d:
            ctx = Context("digits", SHARED["full"], d, 0, progress=False)
            t0, cpu0 = time.perf_counter(), time.process_time()
            outcome = situation.run(ctx, {**situation.settings(False), "size": size})
            curve = outcome.details["curve"]
            out[size] = {"data": outcome.data, "wall_s": round(time.perf_counter() - t0, 1),
                         "cpu_s": round(time.process_time() - cpu0, 1),
                         "curve": {k: {n: round(v, 4) for n, v in s.items()} for k, s in curve.items()},
                         "verdict": {k: {"best": (v := decide(s)).best, "tied": v.tied} for k, s in curve.items()}}
        print(json.dumps({size: out[size]}), flush=True)
    print(json.dumps({"threads": a.threads, "sizes": out}, indent=1))


if __name__ == "__main__":
    main()
