"""Multi-task learning: masked losses, learnable weightings, per-task metrics, Delta_m, persistence."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from transferkit.data import FASHION_CLASSES, from_arrays, stratified_split
from transferkit.data import task_sequence
from transferkit.data.fashion_tasks import add_fashion_tasks, fashion_task_columns
from transferkit.errors import DataError, TransferkitError
from transferkit.strategies import Strategy, create_strategy
from transferkit.strategies.tasks.multitask import MultiTask
from transferkit.strategies.tasks.weighting import masked_task_loss, multitask_gain



FAST = dict(backbone="builtin:micro-cnn", pretrained=False, input_size=8, batch_size=32, lr=1e-2, progress=False)


@pytest.fixture(scope="module")
def digit_tasks(digits):
    """Digits with extra columns: parity (30% missing), 'big' as text, and the ink fraction (regression)."""
    rng = np.random.default_rng(0)
    parity = (digits.labels % 2).astype(np.float64)
    parity[rng.random(len(digits)) < 0.3] = np.nan
    big = np.array(["big" if l >= 5 else "small" for l in digits.labels], dtype=object)
    big[rng.random(len(digits)) < 0.1] = ""
    ink = (digits.images.reshape(len(digits), -1) > 60).mean(1)
    ds = copy.copy(digits)
    ds.extra = {"parity": parity, "big": big, "ink": ink}
    return stratified_split(ds, 0.3, seed=0)


def test_masked_loss_ignores_missing_rows():
    torch.manual_seed(0)
    logits = torch.randn(6, 3, requires_grad=True)
    target = torch.tensor([0.0, float("nan"), 2.0, -1.0, 1.0, float("nan")])
    keep = torch.tensor([0, 2, 4])
    loss = masked_task_loss(logits, target, "classification")
    assert torch.allclose(loss, F.cross_entropy(logits[keep], target[keep].long()))
    loss.backward()
    assert torch.all(logits.grad[[1, 3, 5]] == 0) and torch.any(logits.grad[keep] != 0)
    out = torch.randn(4, 1, requires_grad=True)
    t = torch.tensor([1.0, float("nan"), -2.0, float("nan")])
    assert torch.allclose(masked_task_loss(out, t, "regression"), F.mse_loss(out[[0, 2], 0], t[[0, 2]]))
    empty = masked_task_loss(out, torch.full((4,), float("nan")), "regression")
    assert empty.item() == 0.0 and empty.requires_grad


def test_multitask_learns_every_task_and_reports_metrics(digit_tasks):
    train, test = digit_tasks
    mt = MultiTask(epochs=4, **FAST).fit(train)
    kinds = {s["name"]: s["kind"] for s in mt.tasks_}
    assert kinds == {"label": "classification", "big": "classification", "ink": "regression", "parity": "classification"}
    res = mt.evaluate(test)
    tasks = res["tasks"]
    assert tasks["label"]["accuracy"] > 0.6             # chance 0.1
    assert tasks["parity"]["accuracy"] > 0.7            # chance 0.5
    assert tasks["big"]["accuracy"] > 0.7
    assert tasks["ink"]["r2"] > 0.3                     # a mean predictor has R^2 = 0
    assert tasks["parity"]["n"] < len(test)             # missing labels are masked in evaluation too
    assert res["accuracy"] == pytest.approx(tasks["label"]["accuracy"])
    preds = mt.predict_tasks(test)
    assert preds["label"].shape == (len(test),) and set(np.unique(preds["big"])) <= {0, 1}
    assert mt.predict_proba(test).shape == (len(test), 10)


def test_uncertainty_weights_are_learnable_and_move(digit_tasks):
    train, _ = digit_tasks
    mt = MultiTask(epochs=2, weighting="uncertainty", tasks=["label", "parity", "ink"], **FAST).fit(train)
    log_vars = mt.weighting_.log_vars
    assert log_vars.requires_grad and log_vars.shape == (3,)
    assert torch.all(log_vars.detach().abs() > 1e-3)    # every s_t moved away from its initial 0
    assert any(k.startswith("train_w_") for k in mt.history_[-1])
    assert mt.task_weights_["label"] == pytest.approx(float(torch.exp(-log_vars[0].detach())))


def test_gradnorm_weights_move_and_stay_normalised(digit_tasks):
    train, test = digit_tasks
    mt = MultiTask(epochs=2, weighting="gradnorm", tasks={"label": "classification", "ink": "regression"}, **FAST).fit(train)
    w = mt.weighting_.weights.detach()
    assert w.sum().item() == pytest.approx(2.0, rel=1e-4)
    assert not torch.allclose(w, torch.ones(2))
    assert mt.evaluate(test)["tasks"]["label"]["accuracy"] > 0.4


def test_multitask_gain_definition():
    # +10% on an accuracy, MAE 2 -> 1 (50% better): Delta = (10 + 50) / 2
    d = multitask_gain({"a": 0.55, "r": 1.0}, {"a": 0.5, "r": 2.0}, {"a": False, "r": True})
    assert d == pytest.approx(30.0)


def test_single_task_baselines_and_delta(digit_tasks):
    train, test = digit_tasks
    small = train.subset(np.arange(400))
    mt = MultiTask(epochs=1, tasks=["label", "ink"], **FAST).fit(small)
    rep = mt.compare_single_task(small, test)
    assert set(rep["single_task"]) == {"label", "ink"} and rep["metric"] == {"label": "accuracy", "ink": "mae"}
    expected = multitask_gain({"label": rep["multi_task"]["label"]["accuracy"], "ink": rep["multi_task"]["ink"]["mae"]},
                              {"label": rep["single_task"]["label"]["accuracy"], "ink": rep["single_task"]["ink"]["mae"]},
                              {"label": False, "ink": True})
    assert rep["delta_m"] == pytest.approx(expected) and np.isfinite(rep["delta_m"])


def test_save_load_round_trip(digit_tasks, tmp_path):
    train, test = digit_tasks
    mt = MultiTask(epochs=1, weighting="uncertainty", tasks=["label", "big"], **FAST).fit(train.subset(np.arange(300)))
    mt.save(tmp_path / "mt")
    back = Strategy.load(tmp_path / "mt")
    assert isinstance(back, MultiTask) and back.tasks_ == mt.tasks_
    a, b = mt.predict_tasks(test), back.predict_tasks(test)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert back.task_weights_ == pytest.approx(mt.task_weights_)


def test_errors_name_the_argument(digit_tasks):
    train, _ = digit_tasks
    with pytest.raises(TransferkitError, match="'weighting' parameter of MultiTask must be one of"):
        MultiTask(weighting="pcgradd", **FAST).fit(train)
    with pytest.raises(DataError, match="'colour'.*available"):
        MultiTask(tasks=["label", "colour"], **FAST).fit(train)
    with pytest.raises(TransferkitError, match="tasks\\['big'\\]"):
        MultiTask(tasks={"big": "ranking"}, **FAST).fit(train)
    assert isinstance(create_strategy("multitask", weighting="gradnorm"), MultiTask)


def test_fashion_task_columns():
    labels = np.arange(10).repeat(2)
    images = np.zeros((20, 28, 28), np.uint8)
    images[:, 5:20, 5:15] = 200
    ds = from_arrays(images, labels, FASHION_CLASSES)
    cols = fashion_task_columns(ds)
    assert cols["category"][labels == 1].tolist() == [1, 1]          # Trouser -> bottom
    assert cols["category"][labels == 9].tolist() == [3, 3]          # Ankle boot -> footwear
    assert np.isnan(cols["sleeves"][labels == 3]).all()              # Dress: unknown, masked
    assert cols["sleeves"][labels == 4].tolist() == [1, 1]           # Coat has sleeves
    assert cols["ink"] == pytest.approx(np.full(20, 150 / 784))
    assert sorted(add_fashion_tasks(ds).extra) == ["category", "ink", "sleeves"]
    tasks = task_sequence(ds, 5)
    assert [t.classes for t in tasks][1] == ["Pullover", "Dress"] and all(len(t) == 4 for t in tasks)
    with pytest.raises(DataError, match="Fashion-MNIST classes"):
        fashion_task_columns(from_arrays(images, labels % 5))
