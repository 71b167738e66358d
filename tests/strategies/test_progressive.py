"""Progressive networks and the continual-learning protocol: zero forgetting, accuracy matrix, baselines."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from transferkit.data import stratified_split
from transferkit.data import task_sequence
from transferkit.errors import DataError, TransferkitError
from transferkit.strategies import Strategy, create_strategy
from transferkit.strategies.tasks.ewc import EWC
from transferkit.strategies.tasks.protocol import compare_continual, continual_metrics
from transferkit.strategies.tasks.sequential import SequentialFineTune
from transferkit.strategies.tasks.progressive import ProgressiveNetworks




FAST = dict(backbone="builtin:micro-cnn", pretrained=False, input_size=8, batch_size=32, lr=1e-2, epochs=3, progress=False)


@pytest.fixture(scope="module")
def digit_tasks(digits):
    """Three 2-class tasks (digits 0/1, 2/3, 4/5), each split 70/30 into (train, test)."""
    tasks = task_sequence(digits, 3, classes_per_task=2)
    pairs = [stratified_split(t, 0.3, seed=0) for t in tasks]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def test_continual_metrics_on_a_known_matrix():
    R = np.array([[0.9, np.nan, np.nan],
                  [0.7, 0.8, np.nan],
                  [0.6, 0.75, 0.95]])
    m = continual_metrics(R, reference=[0.9, 0.7, 0.9])
    assert m["average_accuracy"] == pytest.approx((0.6 + 0.75 + 0.95) / 3)
    assert m["bwt"] == pytest.approx(((0.6 - 0.9) + (0.75 - 0.8)) / 2)
    assert m["forgetting"] == pytest.approx(((0.9 - 0.6) + (0.8 - 0.75)) / 2)
    assert m["fwt"] == pytest.approx(((0.8 - 0.7) + (0.95 - 0.9)) / 2)
    full = np.array([[0.9, 0.5], [0.8, 0.9]])
    assert continual_metrics(full, init_accuracy=[0.5, 0.4])["fwt"] == pytest.approx(0.1)
    assert np.isnan(continual_metrics(R)["fwt"])


def test_progressive_columns_are_bit_identical_and_never_forget(digit_tasks):
    trains, tests = digit_tasks
    pnn = ProgressiveNetworks(**FAST).partial_fit(trains[0])
    col0 = {k: v.clone() for k, v in pnn.model_.columns[0].state_dict().items()}
    acc0 = pnn.evaluate(tests[0], task=0)["accuracy"]
    proba0 = pnn.predict_proba(tests[0], task=0)
    assert acc0 > 0.9                                   # chance 0.5
    pnn.partial_fit(trains[1]).partial_fit(trains[2])
    after = pnn.model_.columns[0].state_dict()
    assert all(torch.equal(col0[k], after[k]) for k in col0)   # weights and BatchNorm statistics
    assert pnn.evaluate(tests[0], task=0)["accuracy"] == acc0
    assert np.array_equal(pnn.predict_proba(tests[0], task=0), proba0)
    assert len(pnn.model_.columns) == 3
    # lateral adapters: column 2 has one per stage from each of the 2 earlier columns, and they were trained
    lat = pnn.model_.columns[2].laterals
    assert len(lat) == 3 and all(len(l) == 2 for l in lat)
    assert any(a.alpha.item() != pytest.approx(0.1) for l in lat for a in l)
    assert pnn.evaluate(tests[2], task=2)["accuracy"] > 0.9
    assert pnn.predict(tests[1], task=1).shape == (len(tests[1]),)


def test_accuracy_matrix_pnn_vs_sequential_finetune(digit_tasks):
    trains, tests = digit_tasks
    out = compare_continual({"progressive": ProgressiveNetworks(**FAST), "sequential": SequentialFineTune(**FAST),
                             "ewc": EWC(ewc_lambda=100, fisher_samples=64, **FAST)}, trains, tests)
    R = np.array(out["progressive"]["accuracy_matrix"])
    assert R.shape == (3, 3) and np.isnan(R[0, 1]) and np.all(np.isfinite(np.tril(R)[np.tril_indices(3)]))
    pm = out["progressive"]["metrics"]
    assert pm["forgetting"] == 0.0 and pm["bwt"] == 0.0
    assert pm["average_accuracy"] > 0.9
    for name in ("sequential", "ewc"):
        m = out[name]["metrics"]
        assert m["forgetting"] >= -m["bwt"] - 1e-12      # max_l R[l, j] >= R[j, j]
        assert m["learning_accuracy"] > 0.85
        assert out[name]["n_params"] < out["progressive"]["n_params"]   # PNN grows by a column per task


def test_ewc_penalty_is_zero_at_the_anchor_and_grows(digit_tasks):
    trains, _ = digit_tasks
    ewc = EWC(ewc_lambda=10.0, fisher_samples=32, **FAST).partial_fit(trains[0])
    assert float(ewc.penalty().detach()) == 0.0                  # theta == theta*_0 right after task 0
    assert all((f >= 0).all() for f in ewc.fishers_[0].values()) and any(f.sum() > 0 for f in ewc.fishers_[0].values())
    with torch.no_grad():
        for p in ewc.model_.backbone.parameters():
            p.add_(0.01)
    expected = 0.5 * 10.0 * sum(float((f * 0.01 ** 2).sum()) for f in ewc.fishers_[0].values())
    assert float(ewc.penalty().detach()) == pytest.approx(expected, rel=1e-3)


def test_save_load_round_trip(digit_tasks, tmp_path):
    trains, tests = digit_tasks
    for strat in (ProgressiveNetworks(**{**FAST, "epochs": 1}), EWC(fisher_samples=16, **{**FAST, "epochs": 1})):
        strat.fit(trains[:2])
        strat.save(tmp_path / strat.name)
        back = Strategy.load(tmp_path / strat.name)
        for k in range(2):
            assert np.array_equal(back.predict_proba(tests[k], task=k), strat.predict_proba(tests[k], task=k))


def test_errors(digit_tasks, digits):
    trains, tests = digit_tasks
    pnn = ProgressiveNetworks(**{**FAST, "epochs": 1}).fit(trains[:2])
    with pytest.raises(TransferkitError, match="'task' argument must be a task id in 0..1"):
        pnn.predict(tests[0], task=5)
    with pytest.raises(DataError, match="pass the matching task id"):
        pnn.evaluate(tests[0], task=1)
    with pytest.raises(TransferkitError, match="non-empty list of ImageDatasets"):
        ProgressiveNetworks(**FAST).fit(trains[0])
    with pytest.raises(TransferkitError, match="'column_init' parameter of ProgressiveNetworks"):
        ProgressiveNetworks(column_init="zeros", **FAST).fit(trains)
    with pytest.raises(TransferkitError, match="does not expose sequential stages"):
        ProgressiveNetworks(**{**FAST, "backbone": "timm:vit_tiny_patch16_224", "input_size": 32}).fit(trains)
    assert isinstance(create_strategy("ewc", ewc_lambda=5.0), EWC)
