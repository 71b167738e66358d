"""Divergence (issue 8): a NaN/inf loss or gradient is detected; the step is skipped, or the run stops
with a message naming the likely cause (learning rate, fp16 overflow); never silent garbage."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from transferkit.engine import Trainer
from transferkit.errors import DivergenceError, TransferkitError
from transferkit.strategies.reuse.finetune import FineTune

BASE = dict(backbone="builtin:micro-cnn", pretrained=False, batch_size=32, progress=False, accelerator="cpu")


class _InfGrad(torch.autograd.Function):
    """Forward: 0 (the loss stays finite). Backward: an infinite gradient."""

    @staticmethod
    def forward(ctx, x):
        return x * 0.0

    @staticmethod
    def backward(ctx, g):
        return g * float("inf")


class PoisonedFineTune(FineTune):
    """FineTune whose loss (or gradient) is made non-finite at chosen optimisation steps (test double)."""

    poison_steps: tuple = ()  # 1-based calls of training_step to poison
    grad_steps: tuple = ()  # ... with a finite loss but an infinite gradient

    def training_step(self, batch):
        out = super().training_step(batch)
        self._calls = getattr(self, "_calls", 0) + 1
        if self._calls in self.poison_steps or self._calls in self.grad_steps:
            if self._calls in self.poison_steps:
                out["loss"] = out["loss"] * float("nan")
            else:  # a finite loss whose gradient is infinite
                out["loss"] = out["loss"] + _InfGrad.apply(self.model_.head.weight.sum())
        return out

    def on_fit_start(self, trainer):
        self.initial_params_ = {k: v.detach().clone() for k, v in self.module.named_parameters()}
        parent = getattr(super(), "on_fit_start", None)
        if parent is not None:
            parent(trainer)


def _finite(module) -> bool:
    return all(torch.isfinite(p).all() for p in module.parameters())


@pytest.fixture(scope="module")
def split(digits):
    from transferkit.data import stratified_split

    return stratified_split(digits.subset(np.arange(600)), 0.3, seed=0)


def test_isolated_nonfinite_steps_are_skipped_and_training_recovers(split):
    train, test = split
    m = PoisonedFineTune(epochs=3, lr=1e-2, **BASE)
    m.poison_steps, m.grad_steps = (2, 9, 20), (5, 14, 25)  # NaN losses and infinite gradients
    m.fit(train)
    assert _finite(m.model_), "a poisoned step reached the weights"
    assert all(math.isfinite(h["train_loss"]) for h in m.history_)
    assert m.history_[-1]["train_loss"] < m.history_[0]["train_loss"], m.history_
    acc = m.evaluate(test)["accuracy"]
    assert acc > 0.2, f"training did not recover after skipped steps (accuracy {acc:.3f}, chance 0.1)"


def test_skipped_steps_leave_the_weights_untouched(split):
    """Skipping really drops the step: with every step poisoned the parameters stay the initial ones."""
    train, _ = split
    m = PoisonedFineTune(epochs=1, lr=3e-3, **BASE)
    m.poison_steps = tuple(range(1, 10_000))
    with pytest.raises(DivergenceError, match=r"epoch 1, batch 3 \(3 non-finite step\(s\) in a row\)"):
        m.fit(train)
    now = dict(m.model_.named_parameters())
    assert m.initial_params_ and all(torch.equal(v, now[k]) for k, v in m.initial_params_.items())


def test_persistent_nan_stops_with_a_message(split, tmp_path):
    train, _ = split
    m = PoisonedFineTune(epochs=2, lr=3e-3, checkpoint_dir=str(tmp_path / "ck"), **BASE)
    n_batches = len(train) // 32
    m.poison_steps = tuple(range(n_batches + 3, 10_000))  # epoch 1 is clean, epoch 2 diverges from batch 3
    with pytest.raises(DivergenceError) as info:
        m.fit(train)
    msg = str(info.value)
    assert "epoch 2, batch 5 (3 non-finite step(s) in a row)" in msg
    assert "The learning rate is the usual cause (current: " in msg and "grad_clip" in msg
    assert f"The last good checkpoint is {tmp_path / 'ck' / 'last.ckpt'}" in msg
    state = torch.load(tmp_path / "ck" / "last.ckpt", weights_only=True)
    assert state["epoch"] == 1 and all(torch.isfinite(v).all() for v in state["module"].values() if v.is_floating_point())


def test_huge_learning_rate_diverges_with_a_learning_rate_message(split):
    train, _ = split
    with pytest.raises(DivergenceError, match=r"NaN/inf at epoch 1, batch \d+.*learning rate is the usual cause "
                                              r"\(current: [\d.e+]+\); lower it, or set grad_clip\."):
        FineTune(epochs=2, lr=1e6, optimizer="sgd", **BASE).fit(train)


def test_nan_policy_stop_raises_at_the_first_bad_step(split):
    train, _ = split
    task = PoisonedFineTune(epochs=1, **BASE)
    task.poison_steps = (4,)
    task.classes_ = list(train.classes)
    task.backbone_ = task.make_backbone()
    task.model_ = task.build_model(task.backbone_, len(task.classes_))
    task.setup(train)
    trainer = Trainer(max_epochs=1, accelerator="cpu", nan_policy="stop", progress=False, loggers=())
    with pytest.raises(DivergenceError, match=r"epoch 1, batch 4 \(1 non-finite step\(s\) in a row\)"):
        trainer.fit(task, task.loader(train, train=True))
    assert trainer.global_step == 3


def test_bad_nan_policy_is_a_user_error():
    with pytest.raises(TransferkitError, match=r"'nan_policy' parameter of Trainer must be one of \{'skip', 'stop'\}; got 'ignore'"):
        Trainer(nan_policy="ignore")


def test_fp16_hint_names_the_precision():
    """On CUDA with precision='16-mixed' the message blames fp16 overflow; elsewhere it does not."""
    t = Trainer(precision="16-mixed", accelerator="cpu", progress=False, loggers=())
    t.fabric = type("F", (), {"device": torch.device("cuda")})()
    t.optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.5)
    with pytest.raises(DivergenceError, match=r"fp16 overflow is likely: try precision='bf16-mixed' or '32-true'"):
        t._diverged(0, 0)
    t.fabric = type("F", (), {"device": torch.device("cpu")})()  # Fabric runs 16-mixed as bf16 on CPU
    with pytest.raises(DivergenceError) as info:
        t._diverged(0, 0)
    assert "fp16" not in str(info.value) and "current: 0.5" in str(info.value)
