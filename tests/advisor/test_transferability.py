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
