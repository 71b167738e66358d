"""Bench: run candidate strategies side by side on your data under one budget and one seed.

Every candidate gets the same backbone, epochs, batch size, seed and train/test split; each run writes
its ``result.json`` (``engine.results``) under ``out/<strategy>/`` and the bench writes ``bench.json`` and
``bench.md`` with the ranking: by test accuracy, ties broken by size (parameters) then name, so the same
seed gives the same ranking (timings are reported, but on a shared machine they are not reproducible and
rank only in the ``rank_time`` column).

Roles beyond labelled images are supplied when available: ``target`` (unlabelled images: the test
images with labels hidden unless given), ``semantics`` (the training set's class semantics unless given),
``teacher`` (the most accurate model fitted earlier in the same bench, so list ``distill`` after its
teacher), anything else through ``roles``. Strategies that do not train on one labelled split (task
sequences: ``progressive``, ``ewc``) are skipped with that reason. A candidate whose role is
missing, whose name is unknown or whose run fails is recorded with the reason; the bench goes on.

Example:
    >>> summary = bench(train, test, ["features", "finetune", "freeze"], backbone="file:runs/pretrain",
    ...                 epochs=3, seed=0, out="runs/bench")
    >>> [(r["strategy"], r["accuracy"]) for r in summary["ranking"]]
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..errors import TransferkitError, check_choice
from ..utils import count_parameters, write_json

RANK_BY = ("accuracy", "time", "size")
SHARED = ("backbone", "epochs", "batch_size", "seed", "progress", "lr", "pretrained")


def _n_params(strategy) -> int | None:
    n = getattr(strategy, "n_params_", None)
    if n:
        return int(n)
    for attr in ("model_", "student_", "backbone_"):
        m = getattr(strategy, attr, None)
        if m is not None and hasattr(m, "parameters"):
            return count_parameters(m)
    return None


def bench(train, test, strategies, *, backbone="builtin:small-cnn", epochs: int = 3, batch_size: int = 64,
          seed: int = 0, out=None, params: dict | None = None, roles: dict | None = None,
          time_budget_s: float | None = None, rank_by: str = "accuracy", pretrained: bool = True,
          progress: bool = False, save_models: bool = False, lr: float | None = None) -> dict:
    """Fit every strategy in ``strategies`` on ``train``, evaluate on ``test``, rank them.

    Args:
        train, test: labelled ImageDatasets with the same classes.
        strategies: registered names (``list_strategies()``); unknown ones are skipped with the valid names.
        backbone, epochs, batch_size, seed, lr, pretrained: the shared budget (passed to every strategy
            that accepts them).
        params: per-strategy extra parameters, ``{"lora": {"r": 4}}``.
        roles: extra data roles, e.g. ``{"target": night_images, "tasks": [...]}``.
        time_budget_s: stop starting new candidates once this many seconds are spent.
        rank_by: 'accuracy' (ties: fewer parameters), 'time' or 'size'.
        out: directory for ``<strategy>/result.json``, ``bench.json`` and ``bench.md``.

    Returns the summary dict written to ``bench.json``: ``config``, ``runs`` (one row per candidate,
    with ``status`` ok / skipped / failed and a ``reason``) and ``ranking`` (the ok rows, best first).
    """
    from ..engine import write_result
    from ..strategies import get_strategy_class
    from ..strategies.base import MissingRoleError

    check_choice("bench", "rank_by", rank_by, RANK_BY)
    if isinstance(strategies, str):
        strategies = [s.strip() for s in strategies.split(",") if s.strip()]
    if not strategies:
        raise TransferkitError("bench: give at least one strategy name (see `transferkit strategies`).")
    if list(train.classes) != list(test.classes):
        raise TransferkitError(f"bench: train and test must have the same classes; got {train.classes} and {test.classes}.")
    params = params or {}
    unknown_params = sorted(set(params) - set(strategies))
    if unknown_params:
        raise TransferkitError(f"bench: params given for {unknown_params}, which are not among the strategies {list(strategies)}.")
    available = {"target": test.unlabelled(), **(roles or {})}
    out = Path(out) if out is not None else None
    shared = dict(backbone=backbone, epochs=epochs, batch_size=batch_size, seed=seed, progress=progress,
                  pretrained=pretrained)
    if lr is not None:
        shared["lr"] = lr
    settings = _check_candidates(strategies, shared, params)  # every candidate's parameters, before any work
    rows, fitted, t_start = [], [], time.perf_counter()
    for name in dict.fromkeys(strategies):  # keep order, drop repeats
        row = {"strategy": name, "status": "ok", "reason": ""}
        rows.append(row)
        if time_budget_s is not None and time.perf_counter() - t_start > time_budget_s:
            row.update(status="skipped", reason=f"the time budget of {time_budget_s:g} s was spent before it started")
            continue
        try:
            cls = get_strategy_class(name)
        except TransferkitError as e:
            row.update(status="skipped", reason=str(e))
            continue
        row["family"] = getattr(cls, "family", "")
        kw = settings[name]
        roles_needed = tuple(getattr(cls, "data_roles", ("train",)))
        if "train" not in roles_needed:
            row.update(status="skipped", reason=f"{name!r} does not learn from one labelled train/test split (its data "
                       f"roles are {list(roles_needed)}); compare it with `transferkit fit` on its own data")
            continue
        if "semantics" in roles_needed and available.get("semantics") is None:
            available["semantics"] = getattr(train, "semantics", None)
        if "teacher" in roles_needed and available.get("teacher") is None and fitted:
            available["teacher"] = max(fitted, key=lambda f: f[1])[0]
        try:
            fit_roles = cls.fit_roles(available)
        except MissingRoleError as e:
            row.update(status="skipped", reason=f"{e} This bench does not have it.")
            continue
        try:
            strat = cls(**kw)
            t0 = time.perf_counter()
            strat.fit(train, **fit_roles)
            fit_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            metrics = strat.evaluate(test)
            eval_s = time.perf_counter() - t0
        except (KeyboardInterrupt, MemoryError):
            raise
        except Exception as e:  # one broken candidate must not stop the bench
            row.update(status="failed", reason=f"{type(e).__name__}: {str(e)[:300]}")
            continue
        n_params = _n_params(strat)
        row.update(accuracy=float(metrics["accuracy"]), balanced_accuracy=float(metrics.get("balanced_accuracy", np.nan)),
                   macro_f1=float(metrics.get("macro_f1", np.nan)), fit_s=fit_s, eval_s=eval_s, n_params=n_params,
                   n_trainable_params=getattr(strat, "n_trainable_params_", None))
        fitted.append((strat, row["accuracy"]))
        if out is not None:
            run_dir = out / name
            result = strat.result(metrics, data={"train": train.name, "test": test.name, "n_train": len(train),
                                                 "n_test": len(test), "classes": list(train.classes)},
                                  extra={"bench": {"seed": seed, "epochs": epochs, "backbone": str(backbone)},
                                         "eval_s": eval_s, "n_params": n_params})
            result["timings"] = {**result.get("timings", {}), "fit_s": fit_s, "eval_s": eval_s}
            write_result(run_dir, result)
            row["result"] = str(run_dir / "result.json")
            if save_models:
                try:
                    strat.save(run_dir / "model")
                except Exception as e:  # saving is a convenience; the result stands
                    row["reason"] = f"model not saved: {type(e).__name__}: {e}"
    ok = [r for r in rows if r["status"] == "ok"]
    inf = float("inf")
    keys = {"accuracy": lambda r: (-round(r["accuracy"], 6), r["n_params"] or inf, r["strategy"]),
            "size": lambda r: (r["n_params"] or inf, -round(r["accuracy"], 6), r["strategy"]),
            "time": lambda r: (r["fit_s"], -r["accuracy"], r["strategy"])}
    for key, col in (("time", "rank_time"), ("size", "rank_size"), ("accuracy", "rank_accuracy")):
        for i, r in enumerate(sorted(ok, key=keys[key]), 1):
            r[col] = i
    ranking = sorted(ok, key=keys[rank_by])
    for i, r in enumerate(ranking, 1):
        r["rank"] = i
    summary = {"kind": "transferkit.bench", "config": {"strategies": list(strategies), "seed": seed, "epochs": epochs,
                                                       "batch_size": batch_size, "backbone": str(backbone),
                                                       "rank_by": rank_by, "train": train.name, "n_train": len(train),
                                                       "n_test": len(test), "time_budget_s": time_budget_s},
               "runs": rows, "ranking": ranking, "total_s": time.perf_counter() - t_start}
    if out is not None:
        write_json(out / "bench.json", summary)
        (out / "bench.md").write_text(bench_markdown(summary))
    return summary


def bench_markdown(summary: dict) -> str:
    """The bench summary as a Markdown table (ranked runs, then skipped/failed ones with reasons)."""
    cfg = summary["config"]
    lines = [f"Bench on {cfg['train']} ({cfg['n_train']} train / {cfg['n_test']} test), backbone `{cfg['backbone']}`, "
             f"{cfg['epochs']} epochs, seed {cfg['seed']}, ranked by {cfg['rank_by']}.", "",
             "| rank | strategy | accuracy | balanced acc. | fit time (s) | parameters | rank by time | rank by size |",
             "|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in summary["ranking"]:
        n = f"{r['n_params']:,}" if r.get("n_params") else "-"
        lines.append(f"| {r['rank']} | {r['strategy']} | {r['accuracy']:.4f} | {r['balanced_accuracy']:.4f} | "
                     f"{r['fit_s']:.1f} | {n} | {r['rank_time']} | {r['rank_size']} |")
    other = [r for r in summary["runs"] if r["status"] != "ok"]
    if other:
        lines += ["", "Not ranked:", ""] + [f"- {r['strategy']}: {r['status']} - {r['reason']}" for r in other]
    return "\n".join(lines) + "\n"


def _check_candidates(strategies, shared: dict, params: dict) -> dict:
    """Each registered candidate's parameters (the shared budget it accepts, then its own), validated before any
    candidate trains: an unknown name or a bad value raises, naming the strategy. Unknown strategies are left to
    the bench's rows."""
    from ..strategies import create_strategy, get_strategy_class

    out = {}
    for name in dict.fromkeys(strategies):
        try:
            accepted = set(get_strategy_class(name).param_names())
        except TransferkitError:
            continue
        kw = {**{k: v for k, v in shared.items() if k in accepted}, **dict(params.get(name, {}))}
        try:
            create_strategy(name, **kw)
        except TransferkitError as e:
            raise TransferkitError(f"bench: {name!r}: {e}") from None
        out[name] = kw
    return out
