"""Classification metrics: accuracy, balanced accuracy, macro-F1, per-class accuracy, confusion, ECE."""
from __future__ import annotations

import numpy as np
from sklearn import metrics as skm


def expected_calibration_error(proba: np.ndarray, y_true: np.ndarray, n_bins: int = 15) -> float:
    """ECE (Guo et al. 2017): mean |accuracy - confidence| over equal-width confidence bins, weighted by size."""
    proba = np.asarray(proba, dtype=np.float64)
    conf = proba.max(1)
    correct = (proba.argmax(1) == y_true).astype(np.float64)
    bins = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        m = bins == b
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(ece)


def classification_metrics(y_true, y_pred=None, *, proba=None, classes=None) -> dict:
    """Metrics of a labelled evaluation. Give predictions or probabilities (N, n_classes)."""
    y_true = np.asarray(y_true)
    if proba is not None:
        proba = np.asarray(proba)
        y_pred = proba.argmax(1)
    y_pred = np.asarray(y_pred)
    n_classes = len(classes) if classes is not None else int(max(y_true.max(), y_pred.max()) + 1)
    labels = np.arange(n_classes)
    cm = skm.confusion_matrix(y_true, y_pred, labels=labels)
    support = cm.sum(1)
    per_class = np.divide(np.diag(cm), support, out=np.full(n_classes, np.nan), where=support > 0)
    names = list(classes) if classes is not None else [str(c) for c in labels]
    out = {
        "accuracy": float((y_true == y_pred).mean()) if len(y_true) else float("nan"),
        "balanced_accuracy": float(np.nanmean(per_class)) if len(y_true) else float("nan"),
        "macro_f1": float(skm.f1_score(y_true, y_pred, labels=labels[support > 0], average="macro", zero_division=0)),
        "per_class_accuracy": {n: (None if np.isnan(a) else float(a)) for n, a in zip(names, per_class)},
        "confusion_matrix": cm.tolist(),
        "n": int(len(y_true)),
    }
    if proba is not None:
        out["ece"] = expected_calibration_error(proba, y_true)
    return out


def mean_confidence_interval(values, confidence: float = 0.95) -> tuple[float, float]:
    """Mean and the half-width of its normal-approximation confidence interval (1.96 * std / sqrt(n) at 95%)."""
    from scipy.stats import norm

    v = np.asarray(values, dtype=np.float64)
    if v.size < 2:
        return float(v.mean()) if v.size else float("nan"), float("nan")
    z = norm.ppf(0.5 + confidence / 2)
    return float(v.mean()), float(z * v.std(ddof=1) / np.sqrt(v.size))


def proxy_a_distance(source_features, target_features, *, seed: int = 0, max_samples: int = 2000) -> float:
    """Proxy A-distance ``2 (1 - 2 err)`` (Ben-David et al. 2007; Ganin et al. 2016): ``err`` is the 2-fold
    cross-validated error of a linear classifier telling source (N, D) from target (M, D) embeddings, on equal-size
    subsamples of at most ``max_samples`` each. 0: indistinguishable domains; 2: perfectly separable."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from ..errors import DataError

    a, b = np.asarray(source_features, np.float64), np.asarray(target_features, np.float64)
    if len(a) < 4 or len(b) < 4:
        raise DataError(f"proxy_a_distance needs at least 4 images per domain; got {len(a)} and {len(b)}.")
    rng = np.random.default_rng(seed)
    n = min(len(a), len(b), max_samples)
    x = np.concatenate([a[rng.choice(len(a), n, replace=False)], b[rng.choice(len(b), n, replace=False)]])
    y = np.r_[np.zeros(n), np.ones(n)]
    est = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, C=0.1))
    acc = cross_val_score(est, x, y, cv=StratifiedKFold(2, shuffle=True, random_state=seed)).mean()
    return float(np.clip(2.0 * (1.0 - 2.0 * (1.0 - acc)), 0.0, 2.0))
