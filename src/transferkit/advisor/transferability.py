"""Transferability: rank backbones for a labelled dataset *without training them*.

Every score works on frozen embeddings (``engine.extract_features``, cached on disk), so scoring a
second time, or a second metric, costs no forward pass.

Scores (higher = expected to transfer better):
    ``logme``   LogME: log maximum evidence of a Bayesian linear model on the features, averaged over
                one-vs-rest targets (You et al., "LogME: Practical Assessment of Pre-trained Models for
                Transfer Learning", ICML 2021). Per-sample, roughly in [-2, 2].
    ``leep``    LEEP: log expected empirical prediction of a source classifier's outputs (Nguyen et al.,
                ICML 2020). Needs source-class probabilities (N, Z); for a headless backbone use ``nleep``.
    ``nleep``   N-LEEP: LEEP with a Gaussian mixture on PCA-reduced features standing in for the source
                head (Li et al., "Ranking Neural Checkpoints", CVPR 2021).
    ``nce``     NCE: negative conditional entropy H(Y | Z) of target labels given hard source labels
                (Tran et al., ICCV 2019); here Z = the mixture components of ``nleep``.
    ``knn`` / ``linear``  cross-validated accuracy of a kNN / logistic-regression probe: a direct (and
                still training-free for the backbone) estimate of feature-extraction accuracy.
    ``proxy_a_distance``  domain distance between two image sets (Ben-David et al. 2007): 2 (1 - 2 err)
                of a linear domain classifier; 0 = indistinguishable, 2 = fully separable.

Example:
    >>> rows = score_backbones(["builtin:small-cnn", "file:runs/pretrain"], load_digits())
    >>> [r["backbone"] for r in rows]   # best first (by LogME)
"""
from __future__ import annotations

import time

import numpy as np

from ..errors import DataError, TransferkitError, check_choice

METRICS = ("logme", "nleep", "nce", "knn", "linear")


def _check_xy(features, labels, owner):
    f = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels).reshape(-1)
    if f.ndim != 2 or len(f) != len(y):
        raise DataError(f"{owner}: features must be (N, D) with N = len(labels); got {f.shape} and {y.shape}.")
    keep = y >= 0
    f, y = f[keep], y[keep]
    if len(np.unique(y)) < 2:
        raise DataError(f"{owner}: needs labelled images of at least 2 classes; got {len(np.unique(y))}.")
    return f, y


def logme(features, labels, *, solver: str = "max") -> float:
    """LogME of features (N, D) for integer labels (N,) (You et al. 2021).

    For each class c the one-hot column y_c is modelled as y = F w + noise with w ~ N(0, 1/alpha),
    noise ~ N(0, 1/beta); alpha and beta maximise the evidence; the score is the mean per-sample log
    evidence over classes.

    ``solver='fixed-point'`` is the paper's Algorithm 2 (MacKay's updates from alpha = beta = 1).
    With fewer images than feature dimensions that iteration can stop at a *local* maximum of the
    evidence (an independent check measured -0.172 against a numerical maximum of -0.066), so the
    default ``solver='max'`` also maximises the evidence numerically over (log alpha, log beta) - a
    coarse grid, then L-BFGS-B from the fixed point and from the grid's best few points - and keeps the
    largest evidence. Both evaluate the same closed-form evidence; 'max' is never below 'fixed-point'.
    """
    check_choice("logme", "solver", solver, ("max", "fixed-point"))
    f, y = _check_xy(features, labels, "logme")
    n, d = f.shape
    # eigen-decomposition of F^T F through the thin SVD of F: D - rank(F) eigenvalues are 0
    _, sv, vh = np.linalg.svd(f, full_matrices=False)
    s = np.zeros(d)
    s[: len(sv)] = sv ** 2
    out = []
    for c in np.unique(y):
        yc = (y == c).astype(np.float64)
        z = np.zeros(d)
        z[: len(sv)] = vh @ (f.T @ yc)          # V^T F^T y, zero outside the span of F
        yy = float(yc @ yc)
        log_a, log_b = _logme_fixed_point(s, z, yy, n)
        best = _log_evidence(log_a, log_b, s, z, yy, n)
        if solver == "max":
            best = max(best, _logme_numeric_max(s, z, yy, n, start=(log_a, log_b)))
        out.append(best / n)
    return float(np.mean(out))


def _log_evidence(log_a: float, log_b: float, s, z, yy: float, n: int) -> float:
    """log p(y | F, alpha, beta) in closed form from the eigenvalues ``s`` of F^T F and ``z`` = V^T F^T y."""
    a, b = np.exp(log_a), np.exp(log_b)
    denom = a + b * s
    m = b * z / denom                                        # posterior mean in the eigenbasis
    mm = float(m @ m)
    res = max(yy - 2.0 * float(z @ m) + float(s @ (m * m)), 0.0)    # ||y - F m||^2
    d = len(s)
    return float(d / 2.0 * log_a + n / 2.0 * log_b - 0.5 * np.log(denom).sum() - b / 2.0 * res - a / 2.0 * mm
                 - n / 2.0 * np.log(2 * np.pi))


def _logme_fixed_point(s, z, yy: float, n: int, iters: int = 100) -> tuple[float, float]:
    """The paper's fixed-point updates from alpha = beta = 1; returns (log alpha, log beta)."""
    alpha, beta = 1.0, 1.0
    lam = alpha / beta
    for _ in range(iters):
        gamma = float((beta * s / (alpha + beta * s)).sum())
        m = beta * z / (alpha + beta * s)
        alpha = gamma / max(float(m @ m), 1e-12)
        beta = (n - gamma) / max(yy - 2.0 * float(z @ m) + float(s @ (m * m)), 1e-12)
        new_lam = alpha / beta
        done = abs(new_lam - lam) / lam < 1e-3
        lam = new_lam
        if done:
            break
    return float(np.log(alpha)), float(np.log(beta))


def _logme_numeric_max(s, z, yy: float, n: int, start, n_starts: int = 4) -> float:
    """The evidence maximised over (log alpha, log beta): L-BFGS-B from the fixed point *and* from the best few
    points of a coarse grid, keeping the best. One start is not enough: with fewer samples than dimensions the
    fixed point can sit in a local maximum that beats the grid's best point, and a search started there alone
    stays in it."""
    from scipy.optimize import minimize

    grid = np.linspace(-12.0, 12.0, 13)
    cands = sorted(((_log_evidence(la, lb, s, z, yy, n), (la, lb)) for la in grid for lb in grid), reverse=True)
    starts = [tuple(start)] + [x for _, x in cands[:n_starts]]
    def neg(x):
        return -_log_evidence(x[0], x[1], s, z, yy, n)

    best_val, best_x = max((-neg(x), x) for x in [tuple(start), cands[0][1]])
    for x0 in starts:
        res = minimize(neg, np.asarray(x0), method="L-BFGS-B", bounds=[(-30.0, 30.0)] * 2,
                       options={"ftol": 1e-14, "gtol": 1e-10})
        if np.isfinite(res.fun) and -res.fun > best_val:
            best_val, best_x = -float(res.fun), tuple(res.x)
    # a gradient-free polish: on a nearly flat ridge L-BFGS-B stops a hair short of the top
    res = minimize(neg, np.asarray(best_x), method="Nelder-Mead", options={"xatol": 1e-9, "fatol": 1e-12})
    return max(best_val, -float(res.fun)) if np.isfinite(res.fun) else best_val


def leep(source_proba, labels) -> float:
    """LEEP (Nguyen et al. 2020): source-class probabilities (N, Z), target labels (N,) -> mean log-likelihood.

    P(y | z) is the empirical conditional of target labels given the source "dummy" labels z; the score
    is (1/N) sum_i log sum_z P(y_i | z) P(z | x_i). Always <= 0; closer to 0 transfers better.
    """
    p = np.asarray(source_proba, dtype=np.float64)
    y = np.asarray(labels).reshape(-1)
    if p.ndim != 2 or len(p) != len(y):
        raise DataError(f"leep: source_proba must be (N, Z) with N = len(labels); got {p.shape} and {y.shape}.")
    keep = y >= 0
    p, y = p[keep], y[keep]
    classes, yi = np.unique(y, return_inverse=True)
    joint = np.zeros((len(classes), p.shape[1]))
    np.add.at(joint, yi, p)
    joint /= len(y)
    cond = joint / np.clip(joint.sum(0, keepdims=True), 1e-12, None)     # P(y | z)
    eep = (p @ cond.T)[np.arange(len(y)), yi]
    return float(np.mean(np.log(np.clip(eep, 1e-12, None))))


def nce(source_labels, labels) -> float:
    """NCE (Tran et al. 2019): -H(Y | Z) for hard source labels Z (N,) and target labels Y (N,). <= 0."""
    z = np.asarray(source_labels).reshape(-1)
    y = np.asarray(labels).reshape(-1)
    keep = y >= 0
    z, y = z[keep], y[keep]
    _, zi = np.unique(z, return_inverse=True)
    _, yi = np.unique(y, return_inverse=True)
    joint = np.zeros((yi.max() + 1, zi.max() + 1))
    np.add.at(joint, (yi, zi), 1.0)
    joint /= joint.sum()
    pz = joint.sum(0, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(joint > 0, joint * np.log(joint / pz), 0.0)
    return float(terms.sum())


def _gmm_posteriors(features, n_components, seed, variance=0.8):
    from sklearn.decomposition import PCA
    from sklearn.mixture import GaussianMixture

    f = np.asarray(features, dtype=np.float64)
    f = (f - f.mean(0)) / (f.std(0) + 1e-8)
    k = int(min(f.shape[1], 32, max(2, PCA(random_state=seed).fit(f).explained_variance_ratio_.cumsum().searchsorted(variance) + 1)))
    z = PCA(n_components=k, random_state=seed).fit_transform(f)
    gmm = GaussianMixture(n_components=n_components, covariance_type="diag", reg_covar=1e-4, max_iter=50,
                          random_state=seed).fit(z)
    return gmm.predict_proba(z)


def nleep(features, labels, *, n_components: int | None = None, seed: int = 0) -> float:
    """N-LEEP (Li et al. 2021): LEEP with GMM components (on PCA features keeping 80% variance) as the source.

    ``n_components`` defaults to the number of classes, as in the paper.
    """
    f, y = _check_xy(features, labels, "nleep")
    n_components = n_components or len(np.unique(y))
    return leep(_gmm_posteriors(f, n_components, seed), y)


def nce_score(features, labels, *, n_components: int | None = None, seed: int = 0) -> float:
    """NCE with the hard GMM assignment of :func:`nleep` as the source labels."""
    f, y = _check_xy(features, labels, "nce")
    post = _gmm_posteriors(f, n_components or len(np.unique(y)), seed)
    return nce(post.argmax(1), y)


def _cv(y, folds):
    from sklearn.model_selection import StratifiedKFold

    smallest = np.bincount(np.unique(y, return_inverse=True)[1]).min()
    k = int(min(folds, smallest))
    if k < 2:
        raise DataError(f"A cross-validated probe needs at least 2 labelled images per class; the smallest class has {smallest}.")
    return StratifiedKFold(n_splits=k, shuffle=True, random_state=0)


def probe_accuracy(features, labels, *, kind: str = "linear", folds: int = 5, k: int = 5) -> float:
    """Cross-validated accuracy of a probe on frozen features: 'linear' (standardised logistic
    regression, C=1; Kornblith et al. 2019) or 'knn' (k=5, cosine; Wu et al. 2018)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import Normalizer, StandardScaler

    check_choice("probe_accuracy", "kind", kind, ("linear", "knn"))
    f, y = _check_xy(features, labels, "probe_accuracy")
    cv = _cv(y, folds)
    if kind == "linear":
        est = make_pipeline(StandardScaler(), LogisticRegression(max_iter=200, C=1.0, tol=1e-3))
    else:
        est = make_pipeline(Normalizer(), KNeighborsClassifier(n_neighbors=min(k, max(1, len(y) // (2 * len(np.unique(y)))))))
    return float(cross_val_score(est, f, y, cv=cv).mean())


def subsample(dataset, max_samples: int | None, seed: int = 0):
    """A stratified subset of at most ``max_samples`` labelled images (all of them when None)."""
    idx = np.flatnonzero(dataset.labels >= 0)
    if max_samples is None or len(idx) <= max_samples:
        return dataset.subset(idx) if len(idx) < len(dataset) else dataset
    from sklearn.model_selection import train_test_split

    keep, _ = train_test_split(idx, train_size=max_samples, random_state=seed, stratify=dataset.labels[idx])
    return dataset.subset(np.sort(keep))


def score_features(features, labels, metrics=METRICS, *, seed: int = 0) -> dict:
    """Every requested score of ``features`` (N, D) for ``labels`` (N,), with the seconds each took."""
    fns = {"logme": lambda: logme(features, labels), "nleep": lambda: nleep(features, labels, seed=seed),
           "nce": lambda: nce_score(features, labels, seed=seed),
           "knn": lambda: probe_accuracy(features, labels, kind="knn"),
           "linear": lambda: probe_accuracy(features, labels, kind="linear")}
    out, times = {}, {}
    for m in metrics:
        check_choice("score_features", "metrics", m, METRICS)
        t0 = time.perf_counter()
        out[m] = fns[m]()
        times[m] = time.perf_counter() - t0
    out["seconds"] = times
    return out


def score_backbones(backbones, dataset, *, metrics=("logme", "nleep", "knn", "linear"), rank_by: str = "logme",
                    pretrained: bool = True, max_samples: int | None = 2000, cache=True, seed: int = 0,
                    progress: bool = False, batch_size: int = 256) -> list[dict]:
    """Score each backbone (spec or Backbone) on ``dataset``; rows sorted best first by ``rank_by``.

    Each row: ``backbone``, ``num_features``, ``n_params``, one entry per metric, ``extract_s`` (feature
    extraction seconds; 0 on a cache hit), ``seconds`` per metric, ``rank``.
    """
    from ..backbones import Backbone, create_backbone
    from ..engine import extract_features
    from ..utils import count_parameters, seed_everything

    metrics = tuple(metrics)
    check_choice("score_backbones", "rank_by", rank_by, metrics)
    if not backbones:
        raise TransferkitError("score_backbones: give at least one backbone spec.")
    data = subsample(dataset, max_samples, seed)
    rows = []
    for spec in backbones:
        seed_everything(seed)  # a randomly initialised backbone is the same one on every call
        bb = spec if isinstance(spec, Backbone) else create_backbone(spec, pretrained=pretrained)
        t0 = time.perf_counter()
        feats = np.asarray(extract_features(bb, data, cache=cache, progress=progress, batch_size=batch_size))
        row = {"backbone": bb.spec, "num_features": bb.num_features, "n_params": count_parameters(bb),
               "extract_s": time.perf_counter() - t0}
        row.update(score_features(feats, data.labels, metrics, seed=seed))
        rows.append(row)
    rows.sort(key=lambda r: -r[rank_by])
    for i, r in enumerate(rows, 1):
        r["rank"] = i
    return rows
