"""The tasks of a multi-task fit: which label columns, of which kind (classification or regression), their encoded
targets, decoded predictions and metrics. Missing labels (NaN, -1, an empty string) stay missing: NaN targets.
"""
from __future__ import annotations

import numpy as np

from ...data import ImageDataset
from ...engine import classification_metrics
from ...errors import DataError, TransferkitError, check_choice

KINDS = ("classification", "regression")
MAX_CLASSES_INFERRED = 50


def resolve_tasks(tasks, train: ImageDataset) -> list[dict]:
    """The task specs of MultiTask's ``tasks`` parameter on ``train`` (see MultiTask's docstring): per task its name,
    kind, and class values and names (classification) or training mean and std (regression)."""
    if tasks is None:
        names = ["label", *sorted(train.extra)]
        kinds = {}
    elif isinstance(tasks, dict):
        names, kinds = list(tasks), dict(tasks)
    elif isinstance(tasks, (list, tuple)) and tasks and all(isinstance(t, str) for t in tasks):
        names, kinds = list(tasks), {}
    else:
        raise TransferkitError(f"The 'tasks' parameter of MultiTask must be None, a list of column names or a "
                               f"dict name -> kind; got {tasks!r}.")
    if len(set(names)) != len(names):
        raise TransferkitError(f"The 'tasks' parameter of MultiTask names a column twice: {names}.")
    available = ["label", *train.extra]
    specs = []
    for name in names:
        if name not in available:
            raise DataError(f"The 'tasks' parameter of MultiTask names {name!r}, which is not a label column of "
                            f"{train.name or 'the training set'}; available: {available}.")
        kind = kinds.get(name)
        if kind is not None:
            check_choice("MultiTask", f"tasks[{name!r}]", kind, KINDS)
        if name == "label":
            if kind == "regression":
                raise TransferkitError("The main 'label' column is a class label; it cannot be a regression task.")
            specs.append({"name": name, "kind": "classification", "values": list(range(train.num_classes)),
                          "classes": list(train.classes)})
            continue
        specs.append(column_spec(name, np.asarray(train.extra[name]), kind))
    return specs


def column_spec(name: str, col: np.ndarray, kind: str | None) -> dict:
    """One extra column's task spec; ``kind`` None infers it (text, or at most 50 integer values: classification)."""
    if col.dtype.kind in "OUS":
        vals = sorted({str(v).strip() for v in col if str(v).strip() and str(v) != "nan"})
        if kind == "regression":
            raise DataError(f"Task {name!r} holds text values ({vals[:5]}...); it cannot be a regression task.")
        return {"name": name, "kind": "classification", "values": vals, "classes": vals}
    col = col.astype(np.float64)
    finite = col[np.isfinite(col)]
    if finite.size == 0:
        raise DataError(f"Task {name!r} has no labelled value in the training set.")
    integer = np.all(finite == np.round(finite))
    present = np.unique(finite[finite >= 0]) if integer else np.array([])
    if kind is None:
        kind = "classification" if integer and 0 < len(present) <= MAX_CLASSES_INFERRED else "regression"
    if kind == "classification":
        if not integer:
            raise DataError(f"Task {name!r} is declared 'classification' but holds non-integer values "
                            f"(e.g. {finite[finite != np.round(finite)][:3].tolist()}).")
        if len(present) < 2:
            raise DataError(f"Classification task {name!r} needs at least 2 classes in the training set; "
                            f"found {present.tolist()}.")
        from ...data.fashion_tasks import FASHION_TASK_CLASSES

        vals = [int(v) for v in present]
        named = FASHION_TASK_CLASSES.get(name)
        classes = [named[v] for v in vals] if named and max(vals) < len(named) else [str(v) for v in vals]
        return {"name": name, "kind": "classification", "values": vals, "classes": classes}
    std = float(finite.std()) or 1.0
    return {"name": name, "kind": "regression", "mean": float(finite.mean()), "std": std}


def encode_targets(specs: list[dict], data: ImageDataset) -> np.ndarray:
    """The (N, T) float32 target matrix of ``data`` for the tasks ``specs``: class indices or standardised
    values, NaN where the label is missing (or a class unseen in training)."""
    out = np.full((len(data), len(specs)), np.nan, dtype=np.float32)
    for t, spec in enumerate(specs):
        if spec["name"] == "label":
            col = data.labels.astype(np.float64)
            col[col < 0] = np.nan
            if list(data.classes) != spec["classes"]:
                raise DataError(f"{data.name or 'The dataset'}: its classes {data.classes} differ from the fitted "
                                f"ones {spec['classes']}.")
            out[:, t] = col
            continue
        if spec["name"] not in data.extra:
            continue  # the column is absent: every label of this task is missing
        col = np.asarray(data.extra[spec["name"]])
        if spec["kind"] == "regression":
            out[:, t] = (col.astype(np.float64) - spec["mean"]) / spec["std"]
        else:
            index = {v: i for i, v in enumerate(spec["values"])}
            if col.dtype.kind in "OUS":
                out[:, t] = [index.get(str(v).strip(), np.nan) for v in col]
            else:
                out[:, t] = [index.get(int(v), np.nan) if np.isfinite(v) else np.nan for v in col.astype(np.float64)]
    return out


def decode(spec: dict, out: np.ndarray) -> np.ndarray:
    """A task's raw outputs (N, width) as predictions: class indices, or values in the column's units."""
    if spec["kind"] == "classification":
        return out.argmax(1)
    return out[:, 0] * spec["std"] + spec["mean"]


def task_metrics(spec: dict, out: np.ndarray, target: np.ndarray) -> dict:
    """A task's metrics from its raw outputs and encoded targets (rows without a label left out)."""
    mask = np.isfinite(target)
    if spec["kind"] == "classification":
        mask &= target >= 0
        if not mask.any():
            return {"accuracy": float("nan"), "n": 0}
        m = classification_metrics(target[mask].astype(np.int64), out[mask].argmax(1), classes=spec["classes"])
        return {"accuracy": m["accuracy"], "balanced_accuracy": m["balanced_accuracy"], "macro_f1": m["macro_f1"],
                "n": m["n"]}
    if not mask.any():
        return {"mae": float("nan"), "n": 0}
    pred = out[mask, 0] * spec["std"] + spec["mean"]
    true = target[mask] * spec["std"] + spec["mean"]
    err = pred - true
    ss_tot = float(((true - true.mean()) ** 2).sum())
    return {"mae": float(np.abs(err).mean()), "rmse": float(np.sqrt((err ** 2).mean())),
            "r2": float(1 - (err ** 2).sum() / ss_tot) if ss_tot > 0 else float("nan"), "n": int(mask.sum())}
