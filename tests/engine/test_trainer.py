import os
import signal

import numpy as np
import pytest
import torch

from transferkit.engine import LambdaCallback, TrainingInterrupted, lr_multiplier
from transferkit.errors import TransferkitError
from transferkit.strategies import create_strategy


def _ft(**kw):
    base = dict(backbone="builtin:micro-cnn", epochs=3, batch_size=64, lr=3e-3, progress=False, seed=0)
    return create_strategy("finetune", **{**base, **kw})


def test_learns_digits_far_above_chance(target_split):
    train, test = target_split
    acc = _ft(backbone="builtin:small-cnn", epochs=3).fit(train).evaluate(test)["accuracy"]
    assert acc > 0.2 + 0.5  # 5 classes: chance 0.2


def test_same_seed_same_metrics_on_cpu(target_split):
    train, test = target_split
    a = _ft(epochs=1).fit(train).predict_proba(test)
    b = _ft(epochs=1).fit(train).predict_proba(test)
    assert np.array_equal(a, b)


def test_history_checkpoint_and_logs_every_epoch(tmp_path, target_split):
    m = _ft(epochs=2, checkpoint_dir=tmp_path).fit(target_split[0])
    assert [h["epoch"] for h in m.history_] == [0, 1] and "train_loss" in m.history_[0]
    assert (tmp_path / "last.ckpt").exists()
    state = torch.load(tmp_path / "last.ckpt", weights_only=True)  # plain tensors only
    assert state["epoch"] == 2 and state["batch"] == 0
    assert (tmp_path / "logs" / "csv" / "metrics.csv").exists()


def test_tensorboard_logs(tmp_path, target_split):
    _ft(epochs=1, checkpoint_dir=tmp_path, loggers=["csv", "tensorboard"]).fit(target_split[0])
    assert list((tmp_path / "logs" / "tensorboard").glob("events.out.tfevents.*"))


def test_resume_after_interruption_reaches_the_same_metrics(tmp_path, target_split):
    train, test = target_split
    reference = _ft().fit(train).predict_proba(test)

    def interrupt(trainer, logs):  # a signal in the middle of epoch 2
        if trainer.epoch == 1 and trainer.global_step == 12:
            os.kill(os.getpid(), signal.SIGINT)

    class Interrupting(type(_ft())):
        def callbacks(self):
            return [LambdaCallback(on_batch_end=interrupt)] if not self.resume else []

    m = Interrupting(**_ft(checkpoint_dir=tmp_path).get_params())
    with pytest.raises(TrainingInterrupted, match="resume"):
        m.fit(train)
    state = torch.load(tmp_path / "last.ckpt", weights_only=True)
    assert state["epoch"] == 1 and state["batch"] > 0  # a mid-epoch checkpoint
    resumed = _ft(checkpoint_dir=tmp_path, resume=True).fit(train)
    assert np.allclose(resumed.predict_proba(test), reference, atol=1e-6)


def test_early_stopping_stops_and_restores_best(target_split):
    m = _ft(epochs=8, val_fraction=0.2, early_stopping=1, lr=0.5, optimizer="sgd").fit(target_split[0])
    assert len(m.history_) < 8 and "val_accuracy" in m.history_[0]


def test_schedules_warmup_cosine_onecycle():
    f = lr_multiplier("cosine", 100, warmup_steps=10)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0) and f(100) == pytest.approx(0.0)
    g = lr_multiplier("onecycle", 100)
    assert g(0) == pytest.approx(1 / 25) and g(30) == pytest.approx(1.0) and g(100) < 1e-3
    with pytest.raises(TransferkitError, match="scheduler"):
        lr_multiplier("cosin", 10)


def test_gradient_clipping_and_nan_divergence_message(target_split):
    _ft(epochs=1, grad_clip=1.0).fit(target_split[0])
    from transferkit.errors import DivergenceError

    with pytest.raises(DivergenceError, match="learning rate"):
        _ft(epochs=1, lr=1e12, optimizer="sgd").fit(target_split[0])


def test_bad_parameters_are_named():
    with pytest.raises(TransferkitError, match="'precision'"):
        _ft(precision="fp8").fit(__import__("transferkit").data.load_digits())
    with pytest.raises(TransferkitError, match="Unknown strategy 'finetun'. Did you mean 'finetune'"):
        create_strategy("finetun")
    with pytest.raises(TransferkitError, match="Unknown parameter"):
        create_strategy("finetune", learning_rate=1)
