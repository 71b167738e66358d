"""Reusing pre-trained weights: fine-tuning (layer-wise LRs, LP-FT, L2-SP, mixup), freezing and progressive
unfreezing, feature extraction + scikit-learn, LoRA.

Data: target digits 5-9 (5 classes, chance = 0.20); backbone: builtin:small-cnn pre-trained on digits 0-4
(the ``pretrained_backbone`` fixture). "Far above chance" is asserted as >= 0.80 accuracy (4x chance).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from transferkit.errors import TransferkitError
from transferkit.strategies import Strategy, create_strategy, list_strategies
from transferkit.strategies.reuse.features import FeatureExtraction
from transferkit.strategies.reuse.finetune import FineTune
from transferkit.strategies.reuse.freeze import FreezeTune

FAR_ABOVE_CHANCE = 0.80  # 5 classes: chance 0.20
FAST = dict(batch_size=32, progress=False, seed=0)


def _snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


class _RecordingFineTune(FineTune):
    """FineTune that records per-step logs and the backbone at the end of each epoch (test probe only)."""

    def on_fit_start(self, trainer):
        super().on_fit_start(trainer)
        self.steps_, self.epoch_states_, self.lr_trace_ = [], [], []

    def on_batch_end(self, trainer, logs):
        self.steps_.append(dict(logs, epoch=trainer.epoch))
        self.lr_trace_.append({g["name"]: g["lr"] for g in trainer.optimizer.param_groups})

    def on_epoch_end(self, trainer, epoch, logs):
        super().on_epoch_end(trainer, epoch, logs)
        self.epoch_states_.append(_snapshot(self.model_.backbone))


class _RecordingFreezeTune(FreezeTune):
    def on_fit_start(self, trainer):
        super().on_fit_start(trainer)
        self.start_state_ = _snapshot(self.model_.backbone)


# -- fine-tuning -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def finetuned(pretrained_backbone, target_split):
    train, _ = target_split
    m = _RecordingFineTune(backbone=pretrained_backbone, epochs=3, lr=3e-3, lr_decay=0.5, lp_epochs=1,
                           backbone_lr_mult=1.0, bn_policy="eval", l2sp_alpha=0.01, warmup_epochs=0.5,
                           label_smoothing=0.1, **FAST)
    initial = _snapshot(create_strategy("finetune", backbone=pretrained_backbone).make_backbone())
    return m.fit(train), initial


def test_finetune_learns_far_above_chance(finetuned, target_split):
    m, _ = finetuned
    metrics = m.evaluate(target_split[1])
    assert metrics["accuracy"] >= FAR_ABOVE_CHANCE, metrics["accuracy"]
    assert {"balanced_accuracy", "macro_f1", "ece", "confusion_matrix"} <= set(metrics)
    assert m.n_trainable_params_ == sum(p.numel() for p in m.model_.parameters())
    assert m.fit_time_ > 0 and len(m.history_) == 3  # learning curve: one entry per epoch
    assert m.history_[-1]["train_loss"] < m.history_[0]["train_loss"]


def test_finetune_layerwise_learning_rates_in_optimizer(finetuned):
    m, _ = finetuned
    names = ["backbone.stem", "backbone.group1", "backbone.group2", "backbone.group3", "backbone.group4", "head"]
    assert list(m.optimizer_lrs_) == names
    expected = [3e-3 * 0.5 ** (5 - i) for i in range(5)] + [3e-3]  # stem = decay^5 ... top = decay^1, head = 1
    assert np.allclose([m.optimizer_lrs_[n] for n in names], expected)
    # the schedule (warmup + cosine) scales every group by the same factor: ratios hold at every step
    for lrs in [t for t in m.lr_trace_ if t["head"] > 0]:  # (cosine ends at 0)
        assert np.allclose([lrs[n] / lrs["head"] for n in names], [e / 3e-3 for e in expected])
    warm = [lrs["head"] for lrs in m.lr_trace_[:5]]
    assert warm == sorted(warm)  # warmup: increasing rates at the start


def test_finetune_lp_phase_keeps_backbone_and_l2sp_zero_then_positive(finetuned):
    m, initial = finetuned
    # LP-FT: epoch 0 trains the head only: backbone (weights and BatchNorm statistics) bit-identical
    after_lp = m.epoch_states_[0]
    assert all(torch.equal(after_lp[k], initial[k]) for k in initial)
    assert m.history_[0]["trainable_groups"] == [] and len(m.history_[1]["trainable_groups"]) == 5
    # L2-SP: zero at the start (and during LP), positive once the backbone moves, and growing
    l2sp = [s["l2sp"] for s in m.steps_]
    lp = [s["l2sp"] for s in m.steps_ if s["epoch"] == 0]
    assert l2sp[0] == 0.0 and all(v == 0.0 for v in lp)
    assert m.steps_[-1]["l2sp"] > 0 and m.history_[2]["train_l2sp"] > m.history_[1]["train_l2sp"] > 0
    assert m.l2sp_penalty().item() > 0
    # the backbone changed after LP (fine-tuning actually updated it)
    assert not torch.equal(m.epoch_states_[-1]["model.stem.0.weight"], initial["model.stem.0.weight"])


def test_finetune_save_load_roundtrip(finetuned, target_split, tmp_path):
    m, _ = finetuned
    m.save(tmp_path / "ft")
    back = Strategy.load(tmp_path / "ft")
    assert type(back) is FineTune or isinstance(back, FineTune)
    assert np.allclose(back.predict_proba(target_split[1]), m.predict_proba(target_split[1]), atol=1e-5)


def test_explicit_group_multipliers_and_l2sp_turns_off_weight_decay(pretrained_backbone, target_split):
    m = FineTune(backbone=pretrained_backbone, lr=1e-3, head_lr_mult=10, l2sp_alpha=0.1, backbone_lr_mult=1.0,
                 group_lr_mults={"stem": 0.0, "group4": 0.5})
    m.classes_ = list(target_split[0].classes)
    m.backbone_ = m.make_backbone()
    m.model_ = m.build_model(m.backbone_, 5)
    groups = {g["name"]: g for g in m.param_groups()}
    assert groups["backbone.stem"]["lr"] == 0.0 and groups["backbone.group1"]["lr"] == 1e-3
    assert groups["backbone.group4"]["lr"] == 5e-4 and groups["head"]["lr"] == pytest.approx(1e-2)
    assert all(g["weight_decay"] == 0.0 for g in groups.values())  # L2-SP replaces decay toward zero
    n = sum(p.numel() for g in groups.values() for p in g["params"])
    assert n == sum(p.numel() for p in m.model_.parameters())  # every parameter in exactly one group
    m.group_lr_mults = [1, 2, 3]
    with pytest.raises(TransferkitError, match="group_lr_mults.*one multiplier per backbone group"):
        m.param_groups()
    m.group_lr_mults = {"stemm": 1}
    with pytest.raises(TransferkitError, match=r"unknown groups \['stemm'\]"):
        m.param_groups()


def test_mixup_cutmix_step_gives_soft_targets(pretrained_backbone, target_split):
    m = FineTune(backbone=pretrained_backbone, mixup_alpha=0.4, cutmix_alpha=1.0)
    m.classes_ = list(target_split[0].classes)
    m.backbone_ = m.make_backbone()
    m.model_ = m.build_model(m.backbone_, 5)
    m.setup(target_split[0])
    x, y = torch.rand(8, 3, 32, 32), torch.arange(8) % 5
    mixed, soft = m._mix(x, y)
    assert mixed.shape == x.shape and soft.shape == (8, 5) and torch.allclose(soft.sum(1), torch.ones(8))
    out = m.training_step((x, y))
    assert out["loss"].requires_grad and torch.isfinite(out["loss"])


def test_default_recipe_on_pretrained_weights_is_lp_ft_with_frozen_batchnorm(pretrained_backbone, target_split):
    """Issue 23's default: the head alone for half the epochs, then every layer with the body at a tenth of the
    head's rate, every BatchNorm layer (statistics and affine parameters) as loaded."""
    from torch import nn

    m = _RecordingFineTune(backbone=pretrained_backbone, epochs=2, progress=False, seed=0)
    initial = _snapshot(m.make_backbone())
    m.fit(target_split[0])
    assert (m.epochs, m.batch_size, m.lp_epochs_, m.backbone_lr_mult_, m.bn_policy_) == (2, 32, 1, 0.1, "frozen")
    # epoch 1: the head only, the body bit-identical; epoch 2: every group, at a tenth of the head's rate
    assert m.history_[0]["trainable_groups"] == [] and all(torch.equal(m.epoch_states_[0][k], v) for k, v in initial.items())
    assert m.history_[1]["trainable_groups"] == list(m.backbone_.group_names)
    body = [lr for name, lr in m.optimizer_lrs_.items() if name.startswith("backbone.")]
    assert body and np.allclose(body, 0.1 * m.optimizer_lrs_["head"])
    # the body moved, its BatchNorm layers did not (running statistics and affine parameters)
    norms = [n for n, mod in m.model_.backbone.named_modules() if isinstance(mod, nn.BatchNorm2d)]
    assert norms
    final = m.epoch_states_[-1]
    for k, v in initial.items():
        if any(k.startswith(n + ".") for n in norms):
            assert torch.equal(final[k], v), k
    assert any(not torch.equal(final[k], v) for k, v in initial.items() if k.endswith("weight"))


def test_from_a_random_initialisation_every_layer_trains_from_the_start(target_split):
    m = FineTune(backbone="builtin:micro-cnn", epochs=2, progress=False, seed=0).fit(target_split[0])
    assert (m.lp_epochs_, m.backbone_lr_mult_, m.bn_policy_) == (0, 1.0, "eval")
    assert m.history_[0]["trainable_groups"] == list(m.backbone_.group_names)


@pytest.mark.parametrize("params, match", [
    (dict(lr_decay=0.0), "'lr_decay' parameter of FineTune must be in \\(0, 1\\]; got 0.0"),
    (dict(bn_policy="freeze"), "'bn_policy' parameter of FineTune must be one of"),
    (dict(lp_epochs=5, epochs=3), "'lp_epochs' parameter of FineTune must be in \\[0, 3\\]"),
    (dict(l2sp_alpha=-1), "'l2sp_alpha'"),
])
def test_finetune_parameter_errors(params, match, target_split):
    with pytest.raises(TransferkitError, match=match):
        FineTune(**params).fit(target_split[0])


# -- freezing / progressive unfreezing -----------------------------------------------------------------

@pytest.fixture(scope="module")
def unfrozen(pretrained_backbone, target_split):
    m = _RecordingFreezeTune(backbone=pretrained_backbone, freeze="all-but-head", unfreeze_every=1, epochs=3,
                             lr=1e-2, **FAST)
    return m.fit(target_split[0])


def test_progressive_unfreezing_order_and_timing(unfrozen, target_split):
    m = unfrozen
    assert [h["trainable_groups"] for h in m.history_] == [[], ["group4"], ["group3", "group4"]]
    assert m.unfreeze_schedule_ == {0: [], 1: ["group4"], 2: ["group3", "group4"]}
    assert [h["n_trainable_params"] for h in m.history_] == sorted(h["n_trainable_params"] for h in m.history_)
    assert m.evaluate(target_split[1])["accuracy"] >= FAR_ABOVE_CHANCE


def test_frozen_groups_bit_identical_after_training(unfrozen):
    m = unfrozen
    end = _snapshot(m.model_.backbone)
    # groups: stem, group1..group4 = stem, stages.0..stages.3; after 3 epochs group3 and group4 have trained
    frozen = [k for k in end if k.startswith(("model.stem.", "model.stages.0.", "model.stages.1."))]
    trained = [k for k in end if k.startswith(("model.stages.2.", "model.stages.3.")) and k.endswith("weight")]
    assert frozen and trained
    # bn_policy='eval': parameters *and* BatchNorm running statistics of the frozen groups are untouched
    assert all(torch.equal(end[k], m.start_state_[k]) for k in frozen)
    assert all(not torch.equal(end[k], m.start_state_[k]) for k in trained)
    # the optimizer held every group from the start (unfreezing flips requires_grad only)
    assert list(m.optimizer_lrs_)[-1] == "head" and len(m.optimizer_lrs_) == 6


@pytest.mark.parametrize("policy", ["train", "frozen"])
def test_batchnorm_policies(policy, pretrained_backbone, target_split):
    from transferkit.data import k_per_class

    small = k_per_class(target_split[0], 16)  # 80 images, 2 steps of 32 (drop_last)
    m = _RecordingFreezeTune(backbone=pretrained_backbone, freeze=2, epochs=1, bn_policy=policy, lr=1e-2, **FAST)
    m.fit(small)
    end, start = _snapshot(m.model_.backbone), m.start_state_
    assert m.history_[0]["trainable_groups"] == ["group2", "group3", "group4"]  # freeze=2: stem, group1 frozen
    frozen_w = [k for k in end if k.startswith(("model.stem.", "model.stages.0.")) and not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    assert all(torch.equal(end[k], start[k]) for k in frozen_w)  # frozen parameters: bit-identical
    stats = "model.stem.1.running_mean"
    if policy == "train":  # statistics of frozen layers keep updating
        assert not torch.equal(end[stats], start[stats])
    else:  # 'frozen': every BatchNorm fixed, even in trained groups (affine params and statistics)
        for k in ("model.stages.3.0.1.weight", "model.stages.3.0.1.running_mean", stats):
            assert torch.equal(end[k], start[k]), k
        assert not torch.equal(end["model.stages.3.0.0.weight"], start["model.stages.3.0.0.weight"])


def test_freeze_errors(target_split):
    with pytest.raises(TransferkitError, match="'freeze' parameter of FreezeTune must be one of"):
        FreezeTune(freeze="backbone").fit(target_split[0])
    with pytest.raises(TransferkitError, match="has only 5 layer groups"):
        FreezeTune(freeze=9, epochs=1, progress=False).fit(target_split[0])
    with pytest.raises(TransferkitError, match="'unfreeze_every' parameter of FreezeTune must be in \\[1"):
        FreezeTune(unfreeze_every=0).fit(target_split[0])


# -- feature extraction -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def probe(pretrained_backbone, target_split):
    return FeatureExtraction(backbone=pretrained_backbone, classifier="logreg", progress=False).fit(target_split[0])


def test_feature_extraction_logreg(probe, target_split):
    m = probe
    assert m.evaluate(target_split[1])["accuracy"] >= 0.9
    assert m.best_params_["C"] in m.cv_results_["values"] and m.cv_results_["folds"] == 5
    assert len(m.cv_results_["mean_accuracy"]) == len(m.cv_results_["values"])
    assert m.n_trainable_params_ == 128 * 5 + 5  # coefficients + intercepts of the probe
    assert m.predict_proba(target_split[1]).shape == (len(target_split[1]), 5)


@pytest.mark.parametrize("classifier", ["linear-svm", "rbf-svm", "knn", "ridge"])
def test_feature_extraction_classifiers_and_roundtrip(classifier, pretrained_backbone, target_split, tmp_path):
    train, test = target_split
    m = FeatureExtraction(backbone=pretrained_backbone, classifier=classifier, progress=False).fit(train)
    acc = m.evaluate(test)["accuracy"]
    assert acc >= 0.85, (classifier, acc)
    m.save(tmp_path / classifier)
    back = Strategy.load(tmp_path / classifier)
    assert (back.predict(test) == m.predict(test)).mean() >= 0.99
    p = back.predict_proba(test)
    assert np.allclose(p.sum(1), 1) and p.shape == (len(test), 5)


def test_feature_extraction_uses_cache_and_intermediate_layer(probe, pretrained_backbone, target_split, monkeypatch):
    train = target_split[0]
    m = FeatureExtraction(backbone=pretrained_backbone, classifier="ridge", progress=False)

    calls = []
    from transferkit.backbones import Backbone

    orig = Backbone.forward
    monkeypatch.setattr(Backbone, "forward", lambda self, x: calls.append(1) or orig(self, x))
    m.fit(train)  # same backbone, data and transform as ``probe``: served by the feature cache
    assert calls == [] and m.n_features_ == 128
    mid = FeatureExtraction(backbone=pretrained_backbone, layer=2, classifier="logreg", param_grid=[1.0],
                            progress=False).fit(train)
    assert calls and mid.n_features_ == 64  # stage 2 of small-cnn has 64 channels
    assert mid.evaluate(target_split[1])["accuracy"] >= FAR_ABOVE_CHANCE
    with pytest.raises(TransferkitError, match="'classifier' parameter of FeatureExtraction must be one of"):
        FeatureExtraction(classifier="svm").fit(train)


# -- LoRA -------------------------------------------------------------------------------------------------------

def test_lora_on_pretrained_cnn(pretrained_backbone, target_split, tmp_path):
    pytest.importorskip("peft")
    m = create_strategy("lora", backbone=pretrained_backbone, lr=1e-2, epochs=2, **FAST).fit(target_split[0])
    assert m.evaluate(target_split[1])["accuracy"] >= FAR_ABOVE_CHANCE
    assert 0 < m.trainable_fraction_ < 0.2 and len(m.history_) == 2
    base = {n: p for n, p in m.model_.backbone.named_parameters() if "lora_" not in n}
    assert base and not any(p.requires_grad for p in base.values())
    m.save(tmp_path / "lora")
    assert np.allclose(Strategy.load(tmp_path / "lora").predict_proba(target_split[1]), m.predict_proba(target_split[1]), atol=1e-5)


def test_lora_vit_targets_attention_and_keeps_base_frozen(target_split):
    pytest.importorskip("peft")
    from transferkit.data import k_per_class

    small = k_per_class(target_split[0], 10)
    m = create_strategy("lora", backbone="timm:vit_tiny_patch16_224", pretrained=False, input_size=32, r=4,
                        model_kwargs={"img_size": 32, "patch_size": 8, "depth": 2}, epochs=1, batch_size=25,
                        progress=False)
    bb = m.make_backbone()
    before = {n: p.detach().clone() for n, p in bb.model.named_parameters()}
    m.backbone = bb
    m.fit(small)
    assert m.lora_targets_ == ["blocks.0.attn.qkv", "blocks.1.attn.qkv"]
    # rank-4 adapters on two 192 -> 576 projections + the head (192*5 + 5)
    assert m.n_trainable_params_ == 2 * 4 * (192 + 576) + 192 * 5 + 5
    assert 0 < m.trainable_fraction_ < 0.05
    for n, p in m.model_.backbone.model.named_parameters():
        key = n.replace(".base_layer", "")
        if "lora_" not in n:
            assert torch.equal(p, before[key]), n
    with pytest.raises(TransferkitError, match="'target_modules' parameter of LoRA matches no module"):
        create_strategy("lora", backbone=bb, target_modules=["nothing"]).build_model(bb, 5)


def test_registered_names():
    names = list_strategies("reuse-weights")
    assert {"finetune", "freeze", "features", "lora"} <= set(names)
