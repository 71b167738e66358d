import time

import numpy as np
import pytest

from transferkit.backbones import create_backbone
from transferkit.engine import classification_metrics, expected_calibration_error, extract_features, mean_confidence_interval


def test_features_shape_cache_hit_and_key(tmp_path, digits):
    bb = create_backbone("builtin:small-cnn")
    sub = digits.subset(range(300))
    f1 = extract_features(bb, sub, cache=tmp_path, progress=False)
    assert f1.shape == (300, 128) and f1.dtype == np.float32
    assert len(list(tmp_path.glob("*.npy"))) == 1
    t = time.perf_counter()
    f2 = extract_features(bb, sub, cache=tmp_path, progress=False)
    assert time.perf_counter() - t < 0.5 and np.array_equal(f1, f2)
    # other weights, other data or another layer -> another entry
    extract_features(create_backbone("builtin:small-cnn", input_size=28), sub, cache=tmp_path, progress=False)
    extract_features(bb, digits.subset(range(10)), cache=tmp_path, progress=False)
    f_mid = extract_features(bb, sub, cache=tmp_path, progress=False, layer=2)
    assert f_mid.shape == (300, 64)
    assert len(list(tmp_path.glob("*.npy"))) == 4


def test_truncated_cache_file_is_recomputed(tmp_path, digits):
    bb = create_backbone("builtin:micro-cnn")
    sub = digits.subset(range(50))
    f1 = np.array(extract_features(bb, sub, cache=tmp_path, progress=False))
    path = next(tmp_path.glob("*.npy"))
    path.write_bytes(path.read_bytes()[:100])
    assert np.array_equal(extract_features(bb, sub, cache=tmp_path, progress=False), f1)


def test_metrics():
    y = np.array([0, 0, 1, 1, 2])
    p = np.array([[0.9, 0.1, 0], [0.2, 0.8, 0], [0.1, 0.9, 0], [0, 1, 0], [0, 0, 1]])
    m = classification_metrics(y, proba=p, classes=["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(0.8)
    assert m["balanced_accuracy"] == pytest.approx((0.5 + 1 + 1) / 3)
    assert m["per_class_accuracy"] == {"a": 0.5, "b": 1.0, "c": 1.0}
    assert m["confusion_matrix"][0] == [1, 1, 0]
    assert 0 <= m["ece"] <= 1
    assert expected_calibration_error(np.array([[1.0, 0.0]] * 4), np.array([0, 0, 1, 1])) == pytest.approx(0.5)
    mean, half = mean_confidence_interval([0.5, 0.7] * 50)
    assert mean == pytest.approx(0.6) and half == pytest.approx(1.96 * np.std([0.5, 0.7] * 50, ddof=1) / 10, rel=1e-3)
