"""Knowledge distillation: the KD loss, the teacher cache, feature matching, class checks, the report."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from transferkit.errors import DataError, TransferkitError
from transferkit.strategies import Strategy, create_strategy
from transferkit.strategies.efficiency.distill import Distill, kd_loss
from transferkit.strategies.efficiency.report import distillation_report
from transferkit.strategies.reuse.finetune import FineTune




COMMON = dict(pretrained=False, input_size=8, batch_size=32, lr=1e-2, progress=False)


@pytest.fixture(scope="module")
def teacher(target_split, tmp_path_factory):
    """builtin:small-cnn fine-tuned on digits 5-9 (5 classes), saved to disk too."""
    train, _ = target_split
    t = FineTune(backbone="builtin:small-cnn", epochs=6, **COMMON).fit(train)
    d = tmp_path_factory.mktemp("teacher")
    t.save(d)
    return t, d


def test_kd_loss_equals_t2_kl_on_known_logits():
    s = torch.tensor([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    t = torch.tensor([[2.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    T = 3.0
    p_t, p_s = torch.softmax(t / T, 1), torch.softmax(s / T, 1)
    kl = (p_t * (p_t.log() - p_s.log())).sum(1).mean()
    assert kd_loss(s, t, T).item() == pytest.approx((T ** 2 * kl).item(), rel=1e-6)
    assert kd_loss(t, t, T).item() == pytest.approx(0.0, abs=1e-7)
    assert kd_loss(s, t, 1.0).item() == pytest.approx(F.kl_div(F.log_softmax(s, 1), F.softmax(t, 1), reduction="batchmean").item(), rel=1e-6)


def test_distilled_student_learns_from_cached_teacher(teacher, target_split):
    t, _ = teacher
    train, test = target_split
    acc_t = t.evaluate(test)["accuracy"]
    assert acc_t > 0.85
    st = Distill(teacher=t, backbone="builtin:micro-cnn", epochs=6, **COMMON).fit(train)
    assert st.cached_teacher_
    assert {"train_kd", "train_ce"} <= set(st.history_[-1])
    assert st.history_[-1]["train_kd"] < st.history_[0]["train_kd"]
    acc_s = st.evaluate(test)["accuracy"]
    assert acc_s > 0.8                                # chance 0.2
    assert st.n_params_ * 5 < t.n_params_
    rep = distillation_report(t, st, test, batch_sizes=(1, 16))
    s = rep["summary"]
    assert s["param_ratio"] > 5 and s["accuracy_retained"] == pytest.approx(acc_s / acc_t)
    assert rep["rows"]["teacher"]["latency_ms_b1"] > 0 and rep["rows"]["student_distilled"]["size_bytes"] > 0


def test_feature_matching_and_saved_teacher_dir(teacher, target_split, tmp_path):
    _, tdir = teacher
    train, test = target_split
    st = Distill(teacher=str(tdir), backbone="builtin:micro-cnn", feature_weight=1.0, epochs=3, **COMMON).fit(train)
    assert not st.cached_teacher_ and st.model_.regressor is not None
    assert "train_hint" in st.history_[-1] and st.history_[-1]["train_hint"] < st.history_[0]["train_hint"]
    assert st.evaluate(test)["accuracy"] > 0.5
    st.save(tmp_path / "student")
    back = Strategy.load(tmp_path / "student")
    assert np.array_equal(back.predict(test), st.predict(test))


def test_teacher_with_other_classes_is_refused(teacher, digits_source_target):
    t, _ = teacher
    source, _ = digits_source_target   # digits 0-4, class names '0'..'4' vs the teacher's '5'..'9'
    with pytest.raises(DataError, match="teacher was trained on classes"):
        Distill(teacher=t, backbone="builtin:micro-cnn", epochs=1, **COMMON).fit(source)
    with pytest.raises(TransferkitError, match="needs a teacher"):
        Distill(backbone="builtin:micro-cnn", **COMMON).fit(source)
    with pytest.raises(TransferkitError, match="'alpha' parameter of Distill"):
        Distill(teacher=t, alpha=1.5, **COMMON).fit(source)
    assert isinstance(create_strategy("distill", temperature=2.0), Distill)


class _EpochSnapshots(Distill):
    """Distill that keeps the student's backbone at the end of each epoch (test probe only)."""

    def on_epoch_end(self, trainer, epoch, logs):
        super().on_epoch_end(trainer, epoch, logs)
        self.epoch_states_ = getattr(self, "epoch_states_", []) + [
            {k: v.detach().clone() for k, v in self.model_.backbone.state_dict().items()}]


def test_a_pretrained_student_trains_under_the_fine_tuning_recipe(teacher, target_split, pretrained_backbone):
    """BENCHMARKS.md's distillation on photos: the student's recipe, not the teacher, cost the distilled Lite0 its
    points. A pre-trained student gets fine-tuning's: the head alone first (the body and its BatchNorm exactly as
    loaded), then the body at a tenth of the head's rate with BatchNorm frozen; a random student trains plainly."""
    from torch import nn

    t, _ = teacher
    train, _ = target_split
    st = _EpochSnapshots(teacher=t, backbone=pretrained_backbone, epochs=2, progress=False, seed=0).fit(train)
    assert (st.lp_epochs_, st.backbone_lr_mult_, st.bn_policy_) == (1, 0.1, "frozen")
    initial = {k: v for k, v in st.make_backbone().state_dict().items()}
    assert st.history_[0]["trainable_groups"] == [] and all(torch.equal(st.epoch_states_[0][k], v) for k, v in initial.items())
    assert st.history_[1]["trainable_groups"] == list(st.backbone_.group_names)
    assert st.lr_groups_["head"] == pytest.approx(10 * max(v for k, v in st.lr_groups_.items() if k != "head"))
    norms = [n for n, m in st.model_.backbone.named_modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and all(torch.equal(st.epoch_states_[-1][k], v) for k, v in initial.items()
                         if any(k.startswith(n + ".") for n in norms))
    assert any(not torch.equal(st.epoch_states_[-1][k], v) for k, v in initial.items() if k.endswith("weight"))
    plain = Distill(teacher=t, backbone="builtin:micro-cnn", epochs=1, **COMMON).fit(train)
    assert (plain.lp_epochs_, plain.backbone_lr_mult_, plain.bn_policy_) == (0, 1.0, "eval")
