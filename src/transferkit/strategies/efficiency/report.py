"""The distillation table: teacher, student from scratch and distilled student side by side (accuracy, size,
CPU latency) and the ratios a deployment decision reads."""
from __future__ import annotations

from torch import nn

from ...data import ImageDataset
from ...engine.profiling import measure_latency, size_on_disk
from ...utils import count_parameters


def distillation_report(teacher, distilled, test: ImageDataset, *, scratch=None, batch_sizes=(1, 64), threads: int = 1) -> dict:
    """The distillation table: accuracy, parameters, CPU latency per image (at each batch size, ``threads``
    intra-op threads) and size on disk of the teacher, the student trained from scratch (optional) and the
    distilled student, plus the ratios the deployment question asks about.
    """
    rows = {}
    for name, m in (("teacher", teacher), ("student_scratch", scratch), ("student_distilled", distilled)):
        if m is None:
            continue
        net = _logits_net(m)
        row = {"accuracy": m.evaluate(test)["accuracy"], "params": count_parameters(net), "size_bytes": size_on_disk(net)}
        for b in batch_sizes:
            row[f"latency_ms_b{b}"] = measure_latency(net, m.backbone_.data_config["input_size"], b, threads=threads)
        rows[name] = row
    t, s = rows["teacher"], rows["student_distilled"]
    summary = {"param_ratio": t["params"] / s["params"], "accuracy_retained": s["accuracy"] / t["accuracy"],
               "size_ratio": t["size_bytes"] / s["size_bytes"]}
    for b in batch_sizes:
        summary[f"speedup_b{b}"] = t[f"latency_ms_b{b}"] / s[f"latency_ms_b{b}"]
    if "student_scratch" in rows:
        summary["distillation_gain"] = s["accuracy"] - rows["student_scratch"]["accuracy"]
    return {"rows": rows, "summary": summary, "threads": threads}


def _logits_net(strategy) -> nn.Module:
    m = strategy.model_
    if hasattr(m, "regressor"):  # a distilled StudentNet, measured without its training-only FitNets regressor
        return nn.Sequential(m.backbone, m.head).eval()
    return m
