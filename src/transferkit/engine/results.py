"""Result records: plain data (config, metrics, history, timings, environment) written as JSON."""
from __future__ import annotations

import time
from pathlib import Path

from ..utils import environment, read_json, write_json
from .allocator import allocator_name

RESULT_FILE = "result.json"


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
        r = read_json(p)
        if isinstance(r, dict) and r.get("kind") == "transferkit.result":
            r["_path"] = str(p.parent)
            out.append(r)
    return out
