"""Result records: plain data (config, metrics, history, timings, environment) written as JSON."""
from __future__ import annotations

import time
from pathlib import Path

from ..errors import DataError
from ..utils import environment, read_json, write_json
from .allocator import allocator_name

RESULT_FILE = "result.json"

# The result schema: every part of a result record a reader (the report) may take, declared once, here where the
# records are made. A dotted path reads into nested dicts. ``read_field`` refuses an undeclared path, and
# tests/report/test_schema.py checks that every declared path is written by some run of the tour or of a fit.
RESULT_FIELDS = {
    "strategy": "the strategy's registry name",
    "family": "its family (Strategy.family)",
    "params": "its parameters",
    "metrics": "every metric (the report lists the scalar ones per run)",
    "history": "one dict per epoch: epoch, train_loss, val_loss, val_accuracy, ...",
    "environment": "versions and machine",
    "timings.fit_s": "fit wall-clock seconds",
    "metrics.accuracy": "the headline accuracy on the evaluated data",
    "metrics.balanced_accuracy": "mean per-class recall",
    "metrics.macro_f1": "macro-averaged F1",
    "metrics.ece": "expected calibration error",
    "metrics.confusion_matrix": "rows: true class, columns: predicted (extra.classes order)",
    "metrics.ci95": "few-shot: half-width of the episodes' 95% confidence interval of accuracy",
    "metrics.n_way": "few-shot: classes per episode",
    "metrics.k_shot": "few-shot: support images per class",
    "metrics.cells": "few-shot (tour): {'N-way K-shot': the evaluation of that cell (accuracy, ci95, n_way, k_shot)}",
    "metrics.average_accuracy": "continual: mean accuracy over all tasks after the last one",
    "metrics.accuracy_matrix": "continual: row i = after training task i, column j = accuracy on task j",
    "metrics.latency_ms_b1": "deployment: batch-1 CPU latency in PyTorch (ms)",
    "metrics.params": "deployment: parameter count of the evaluated model",
    "extra.classes": "class names in label order",
    "extra.n_params": "parameter count",
    "extra.labels_per_class": "limited labels (tour): labelled images per class the run trained on",
    "extra.embedding_map": "domain shift: {'method', 'coords' (N, 2), 'domain' (N,)} of source and target embeddings",
    "tour.situation": "the tour situation the run belongs to",
    "tour.candidate": "its candidate name in that situation",
}


def read_field(result: dict, path: str, default=None):
    """The value at ``path`` (a key of :data:`RESULT_FIELDS`) in ``result``, or ``default`` where it is absent."""
    if path not in RESULT_FIELDS:
        raise KeyError(f"{path!r} is not a declared result field; declare it in engine.results.RESULT_FIELDS")
    value = result
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return default
        value = value[part]
    return value


def make_result(*, strategy: str, family: str, params: dict, metrics: dict, history=None, timings=None,
                data=None, extra=None) -> dict:
    return {
        "kind": "transferkit.result", "version": 1, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "strategy": strategy, "family": family, "params": params, "metrics": metrics,
        "history": history or [], "timings": timings or {}, "data": data or {}, "extra": extra or {},
        "environment": {**environment(), "allocator": allocator_name()},
    }


def write_result(directory, result: dict) -> Path:
    return write_json(Path(directory) / RESULT_FILE, result)


def read_results(directory) -> list[dict]:
    """Every result.json under ``directory`` (recursively), sorted by path."""
    out = []
    for p in sorted(Path(directory).rglob(RESULT_FILE)):
        try:
            r = read_json(p)
        except (ValueError, UnicodeDecodeError) as e:  # a run killed mid-write, or a file edited by hand
            raise DataError(f"{p} is not a readable result record ({type(e).__name__}: {e}); rerun the run that "
                            f"wrote it, or remove the file.") from None
        if isinstance(r, dict) and r.get("kind") == "transferkit.result":
            r["_path"] = str(p.parent)
            out.append(r)
    return out
