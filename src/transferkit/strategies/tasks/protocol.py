"""The many-tasks family's protocols. Continual learning: metrics of the accuracy matrix R[i, j] (accuracy on task j
after training task i) and several task-sequence strategies fitted and compared on the same tasks (see
``tasks.sequence``). Multi-task learning: a fitted MultiTask against one single-task model per task, and Delta_m."""
from __future__ import annotations

import numpy as np
from sklearn.base import clone

from ...errors import TransferkitError
from ..base import NeuralStrategy
from .weighting import multitask_gain


def continual_metrics(R, reference=None, init_accuracy=None) -> dict:
    """Summary metrics of an accuracy matrix ``R`` (T, T): R[i, j] = accuracy on task j after training task i.

    Returns:
        average_accuracy: mean_j R[T-1, j] (ACC, Lopez-Paz 2017).
        bwt: backward transfer, mean_{j<T-1} (R[T-1, j] - R[j, j]); negative = forgetting (Lopez-Paz 2017).
        forgetting: mean_{j<T-1} (max_{l in [j, T-2]} R[l, j] - R[T-1, j]) (Chaudhry et al. 2018; Avalanche).
        fwt: forward transfer. With ``init_accuracy`` b (accuracy of the untrained model on each task) and a
            filled upper triangle, Lopez-Paz's mean_{j>=1} (R[j-1, j] - b_j). A task-incremental learner has no
            head for task j before training it, so with ``reference`` (accuracy of a model trained on task j
            alone, same backbone and budget) it is mean_{j>=1} (R[j, j] - reference_j): how much learning the
            earlier tasks helps (> 0) or hinders (< 0) the next one. NaN when neither is available.
        learning_accuracy: mean_j R[j, j] (accuracy just after learning each task).
    """
    R = np.asarray(R, dtype=np.float64)
    if R.ndim != 2 or R.shape[0] != R.shape[1] or R.shape[0] < 1:
        raise TransferkitError(f"continual_metrics needs a square accuracy matrix; got shape {R.shape}.")
    T = R.shape[0]
    last = R[T - 1]
    out = {"average_accuracy": float(np.nanmean(last)), "learning_accuracy": float(np.nanmean(np.diag(R)))}
    if T > 1:
        out["bwt"] = float(np.mean([R[T - 1, j] - R[j, j] for j in range(T - 1)]))
        out["forgetting"] = float(np.mean([np.max(R[j:T - 1, j]) - R[T - 1, j] for j in range(T - 1)]))
    else:
        out["bwt"] = out["forgetting"] = float("nan")
    fwt = float("nan")
    upper = [R[j - 1, j] for j in range(1, T)]
    if init_accuracy is not None and T > 1 and np.all(np.isfinite(upper)):
        fwt = float(np.mean([R[j - 1, j] - init_accuracy[j] for j in range(1, T)]))
    elif reference is not None and T > 1:
        fwt = float(np.mean([R[j, j] - reference[j] for j in range(1, T)]))
    out["fwt"] = fwt
    return out


def compare_continual(strategies: dict, tasks, eval_tasks, *, reference: NeuralStrategy | None = None) -> dict:
    """Fit each continual strategy on ``tasks`` and report its accuracy matrix and metrics.

    ``reference``: a :class:`SequentialFineTune` whose clone is trained on each task alone (same backbone and
    budget) to give the per-task reference accuracy used by FWT (see :func:`continual_metrics`).

    Returns ``{name: {"accuracy_matrix": [[...]], "metrics": {...}, "fit_s": ..., "n_params": ...}}`` plus
    ``"reference": [acc per task]`` when given.
    """
    out = {}
    ref = None
    if reference is not None:
        ref = []
        for t, e in zip(tasks, eval_tasks):
            r = clone(reference).fit([t], eval_tasks=[e])
            ref.append(float(r.accuracy_matrix_[0, 0]))
        out["reference"] = ref
    for name, strat in strategies.items():
        strat.fit(tasks, eval_tasks=eval_tasks)
        R = strat.accuracy_matrix_
        out[name] = {"accuracy_matrix": np.round(R, 4).tolist(), "metrics": continual_metrics(R, reference=ref),
                     "fit_s": strat.fit_time_, "n_params": strat.n_params_}
    return out


def compare_single_task(mt, train, test) -> dict:
    """Train one single-task model per task of the fitted MultiTask ``mt``, with its parameters and budget (epochs,
    batches, backbone), evaluate all on ``test`` and report per-task metrics and Delta_m (percent; > 0 means
    multi-task helps).

    The main metric of a task is accuracy (classification, higher is better) or MAE (regression, lower).
    """
    mt.check_fitted()
    multi = mt.evaluate(test)["tasks"]
    single, times = {}, {}
    for spec in mt.tasks_:
        st = clone(mt).set_params(tasks={spec["name"]: spec["kind"]}, weighting="equal")
        st.fit(train)
        single[spec["name"]] = st.evaluate(test)["tasks"][spec["name"]]
        times[spec["name"]] = st.fit_time_
    key = {s["name"]: ("accuracy" if s["kind"] == "classification" else "mae") for s in mt.tasks_}
    lower = {n: k == "mae" for n, k in key.items()}
    delta = multitask_gain({n: multi[n][k] for n, k in key.items()}, {n: single[n][k] for n, k in key.items()}, lower)
    return {"multi_task": multi, "single_task": single, "metric": key, "delta_m": delta,
            "weighting": mt.weighting, "task_weights": getattr(mt, "task_weights_", {}),
            "fit_s": {"multi_task": mt.fit_time_, "single_task": times}}
