"""Transferability scores: they order informative features above uninformative ones."""
import numpy as np
import pytest

from transferkit.advisor import leep, logme, nce, nleep, probe_accuracy, proxy_a_distance, score_backbones
from transferkit.errors import DataError


@pytest.fixture(scope="module")
def pixel_features(digits):
    return digits.images.reshape(len(digits), -1).astype(np.float64), digits.labels


def test_logme_ranks_informative_features_first(pixel_features):
    x, y = pixel_features
    noise = np.random.default_rng(0).normal(size=x.shape)
    half = x[:, :16]  # the top two pixel rows: less information
    scores = [logme(x, y), logme(half, y), logme(noise, y)]
    assert scores[0] > scores[1] > scores[2]
    assert all(np.isfinite(scores))


def test_logme_reaches_the_evidence_maximum_of_a_dense_scan_with_fewer_samples_than_dimensions():
    """Issue 28 stage 5: 60 ReLU features of 128 dimensions, where a single search started from the better of the
    fixed point and the grid's best point stopped short on one class. Every class's evidence is checked against a
    dense scan of (log alpha, log beta) with steps of 0.1."""
    from transferkit.advisor.transferability import _log_evidence, _logme_fixed_point, _logme_numeric_max

    rng = np.random.default_rng(50)
    n, d, k = 60, 128, int(rng.integers(2, 6))
    y = rng.integers(0, k, n)
    scale = 10 ** rng.uniform(-2, 2)
    f = np.maximum(rng.normal(size=(n, d)) + rng.normal(size=(k, d))[y] * rng.uniform(0, 2), 0) * scale
    _, sv, vh = np.linalg.svd(f, full_matrices=False)
    s = np.zeros(d)
    s[: len(sv)] = sv ** 2
    grid = np.linspace(-14, 14, 281)
    for c in np.unique(y):  # class by class: a class above the scan must not hide one below it
        yc = (y == c).astype(float)
        z = np.zeros(d)
        z[: len(sv)] = vh @ (f.T @ yc)
        yy = float(yc @ yc)
        dense = max(_dense_evidence(la, grid, s, z, yy, n).max() for la in grid)
        assert np.isclose(_dense_evidence(grid[7], grid[9:10], s, z, yy, n)[0], _log_evidence(grid[7], grid[9], s, z, yy, n))
        found = _logme_numeric_max(s, z, yy, n, start=_logme_fixed_point(s, z, yy, n))
        assert found >= dense - 1e-9, (c, found / n, dense / n)
    assert logme(f, y) >= logme(f, y, solver="fixed-point")


def _dense_evidence(log_a, log_b, s, z, yy, n):
    """The closed-form log evidence at one log alpha and an array of log beta (the scan, vectorised)."""
    a, b = np.exp(log_a), np.exp(np.asarray(log_b))[:, None]
    denom = a + b * s
    m = b * z / denom
    res = np.maximum(yy - 2.0 * (m @ z) + (m * m) @ s, 0.0)
    return (len(s) / 2 * log_a + n / 2 * np.log(b[:, 0]) - 0.5 * np.log(denom).sum(1) - b[:, 0] / 2 * res
            - a / 2 * (m * m).sum(1) - n / 2 * np.log(2 * np.pi))


def test_leep_and_nce_bounds():
    y = np.repeat(np.arange(4), 25)
    perfect = np.eye(4)[y]
    uniform = np.full((100, 4), 0.25)
    assert leep(perfect, y) == pytest.approx(0.0, abs=1e-9)
    assert leep(uniform, y) == pytest.approx(np.log(0.25))
    assert nce(y, y) == pytest.approx(0.0, abs=1e-12)
    assert nce(np.zeros_like(y), y) == pytest.approx(np.log(0.25))


def test_nleep_and_probes_order(pixel_features):
    x, y = pixel_features
    noise = np.random.default_rng(0).normal(size=(len(y), 32))
    assert nleep(x, y) > nleep(noise, y)
    assert probe_accuracy(x, y, kind="knn") > 0.9
    assert probe_accuracy(noise, y, kind="knn") < 0.25
    assert probe_accuracy(x[:600], y[:600], kind="linear") > 0.85


def test_proxy_a_distance_same_vs_shifted():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(300, 16)), rng.normal(size=(300, 16))
    assert proxy_a_distance(a, b) < 0.4
    assert proxy_a_distance(a, b + 3.0) > 1.8


def test_errors_name_the_problem():
    with pytest.raises(DataError, match="at least 2 classes"):
        logme(np.ones((5, 3)), np.zeros(5))
    with pytest.raises(DataError, match=r"\(N, D\)"):
        logme(np.ones((5, 3)), np.zeros(4))


def test_score_backbones_ranks_and_caches(target_split):
    train, _ = target_split
    specs = ["builtin:micro-cnn", "builtin:small-cnn"]
    rows = score_backbones(specs, train, metrics=("logme", "knn"), max_samples=300, pretrained=False)
    assert [r["rank"] for r in rows] == [1, 2] and {r["backbone"] for r in rows} == set(specs)
    assert rows[0]["logme"] >= rows[1]["logme"]
    assert all(0.2 < r["knn"] <= 1.0 and r["n_params"] > 0 for r in rows)  # 5 classes: above chance
    again = score_backbones(["builtin:small-cnn"], train, metrics=("logme",), max_samples=300)
    first = next(r for r in rows if r["backbone"] == "builtin:small-cnn")
    assert again[0]["logme"] == pytest.approx(first["logme"])     # same features: from the on-disk cache
    with pytest.raises(Exception, match="rank_by"):
        score_backbones(specs, train, metrics=("logme",), rank_by="knn")


def test_logme_max_is_the_evidence_maximum_and_never_below_the_fixed_point():
    """With fewer images than dimensions, the 'max' solver reaches the maximum of the marginal likelihood
    log N(y | 0, I/beta + F F^T/alpha), computed here independently by dense linear algebra."""
    from scipy.optimize import minimize
    from scipy.stats import multivariate_normal

    from transferkit.advisor.transferability import logme

    rng = np.random.default_rng(3)
    n, d = 30, 80
    y = rng.integers(0, 3, n)
    f = rng.normal(size=(n, d)) * 5 + 8 * np.eye(3)[y] @ rng.normal(size=(3, d))

    def neg(x, yc):
        cov = np.eye(n) / np.exp(x[1]) + f @ f.T / np.exp(x[0])
        return -multivariate_normal(np.zeros(n), cov, allow_singular=False).logpdf(yc)

    best = []
    for c in range(3):
        yc = (y == c).astype(float)
        starts = [(a, b) for a in (-8.0, 0.0, 8.0) for b in (-8.0, 0.0, 8.0)]
        best.append(-min(minimize(neg, s, args=(yc,), method="Nelder-Mead").fun for s in starts) / n)
    assert logme(f, y) == pytest.approx(np.mean(best), abs=1e-3)
    assert logme(f, y) >= logme(f, y, solver="fixed-point") - 1e-9
