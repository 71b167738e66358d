"""Attacks stay in the epsilon ball and in [0, 1]; adversarial fine-tuning raises PGD accuracy."""
import numpy as np
import pytest
import torch

from transferkit.backbones import create_backbone
from transferkit.data import stratified_split
from reference_attacks import reference_pgd

from transferkit.robustness import fgsm, pgd, robust_accuracy, threat_model
from transferkit.errors import TransferkitError
from transferkit.strategies import Classifier, Strategy, create_strategy
from transferkit.strategies.domain.adversarial import compare_robustness

COMMON = dict(backbone="builtin:small-cnn", epochs=3, batch_size=32, lr=3e-3, input_size=16, progress=False, seed=0)
EPS = 0.1


@pytest.fixture(scope="module")
def split(digits):
    return stratified_split(digits, 0.3, seed=0)


@pytest.fixture(scope="module")
def plain(split):
    return create_strategy("finetune", **COMMON).fit(split[0])


@pytest.fixture(scope="module")
def robust(split):
    return create_strategy("adversarial-finetune", eps=EPS, steps=3, **COMMON).fit(split[0])


def _batch(seed=0, n=16):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 16, 16, generator=g), torch.randint(0, 10, (n,), generator=g)


@pytest.mark.parametrize("norm,eps", [("linf", 8 / 255), ("linf", 0.3), ("l2", 0.5), ("l2", 2.0)])
def test_pgd_stays_in_the_ball_and_in_pixel_range(norm, eps):
    torch.manual_seed(0)
    model = Classifier(create_backbone("builtin:micro-cnn", input_size=16), 10)
    model.train()
    x, y = _batch()
    x_adv = pgd(model, x, y, eps=eps, norm=norm, steps=5, restarts=2)
    d = (x_adv - x).flatten(1)
    size = d.abs().amax(1) if norm == "linf" else d.norm(dim=1)
    assert float(size.max()) <= eps + 1e-5
    assert float(x_adv.min()) >= 0 and float(x_adv.max()) <= 1
    assert float(size.max()) > 0.5 * eps  # it moved
    assert model.training and all(p.requires_grad for p in model.parameters())  # state restored
    assert all(p.grad is None for p in model.parameters())  # no weight gradients were accumulated


def test_fgsm_is_one_signed_step_of_size_eps():
    torch.manual_seed(0)
    model = Classifier(create_backbone("builtin:micro-cnn", input_size=16), 10).eval()
    x, y = _batch(1)
    x = x * 0.5 + 0.25  # away from the borders so no clipping
    x_adv = fgsm(model, x, y, eps=0.05)
    np.testing.assert_allclose((x_adv - x).abs().numpy(), 0.05, atol=1e-6)


def test_attacks_reduce_accuracy_at_least_as_much_as_a_reference_loop(plain, split):
    x, y = next(iter(plain.loader(split[1], train=False, batch_size=200)))
    model = plain.model_.eval()
    clean = (model(x).argmax(1) == y).float().mean()
    torch.manual_seed(0)
    ours = (model(pgd(model, x, y, eps=EPS, steps=10)).argmax(1) == y).float().mean()
    torch.manual_seed(0)
    ref = (model(reference_pgd(model, x, y, EPS, 10, 2.5 * EPS / 10)).argmax(1) == y).float().mean()
    assert clean > 0.9
    assert ours < clean - 0.5
    assert ours <= ref + 0.05


def test_adversarial_finetuning_raises_pgd_accuracy_over_plain_finetuning(plain, robust, split):
    threat = threat_model(norm="linf", eps=EPS, steps=10)
    table = compare_robustness({"finetune": plain, "adversarial": robust}, split[1], threat, max_samples=300)
    rows = table["rows"]
    assert rows["finetune"]["clean_accuracy"] > 0.9 and rows["adversarial"]["clean_accuracy"] > 0.85
    assert rows["adversarial"]["robust_accuracy"] > rows["finetune"]["robust_accuracy"] + 0.3
    assert table["threat_model"]["steps"] == 10 and table["threat_model"]["eps"] == EPS
    ev = robust.evaluate(split[1], max_samples=100)
    assert {"accuracy", "robust_accuracy", "threat_model"} <= set(ev) and ev["threat_model"]["steps"] == 10


def test_trades_and_mixed_ratio_train_through_the_one_loop(split):
    small = split[0].subset(np.arange(300))
    tr = create_strategy("adversarial-finetune", eps=EPS, steps=2, objective="trades", beta=6.0,
                         **{**COMMON, "epochs": 1}).fit(small)
    assert "train_robust_loss" in tr.history_[0] and "train_natural_loss" in tr.history_[0]
    mixed = create_strategy("adversarial-finetune", eps=EPS, steps=2, adv_ratio=0.5, **{**COMMON, "epochs": 1}).fit(small)
    assert "train_adv_acc" in mixed.history_[0]


def test_frozen_backbone_trains_only_the_head(split, tmp_path):
    small = split[0].subset(np.arange(300))
    adv = create_strategy("adversarial-finetune", eps=EPS, steps=2, freeze_backbone=True, **{**COMMON, "epochs": 1})
    adv.fit(small)
    # the backbone did not move: fit() seeds with seed=0 before building it, so a re-seeded build is its start
    from transferkit.utils import seed_everything

    seed_everything(0)
    ref = create_backbone("builtin:small-cnn", input_size=16)
    for (n, a), (_, b) in zip(adv.backbone_.state_dict().items(), ref.state_dict().items()):
        assert torch.equal(a, b), n
    assert adv.n_trainable_params_ == sum(p.numel() for p in adv.model_.head.parameters())
    loaded = Strategy.load(adv.save(tmp_path / "adv"))
    np.testing.assert_allclose(loaded.predict_proba(split[1]), adv.predict_proba(split[1]), atol=1e-5)


def test_errors_name_argument_and_value():
    with pytest.raises(TransferkitError, match="'norm' parameter of threat_model must be one of .*got 'l1'"):
        threat_model(norm="l1")
    model = Classifier(create_backbone("builtin:micro-cnn", input_size=16), 10)
    x, y = _batch()
    with pytest.raises(TransferkitError, match=r"\[0, 1\] pixel"):
        pgd(model, x * 4 - 2, y)
    with pytest.raises(TransferkitError, match="'objective' parameter of AdversarialFineTune"):
        create_strategy("adversarial-finetune", objective="madry", **COMMON).fit(_batch_dataset())


def _batch_dataset():
    from transferkit.data import load_digits

    return load_digits().subset(np.arange(100))


def test_robust_accuracy_reports_threat_model(plain, split):
    loader = plain.loader(split[1], train=False, batch_size=64)
    res = robust_accuracy(plain.model_, loader, {"norm": "l2", "eps": 0.5, "steps": 5, "restarts": 2}, max_samples=64)
    assert res["n"] == 64 and 0 <= res["robust_accuracy"] <= res["clean_accuracy"] <= 1
    assert res["threat_model"] == {**res["threat_model"], "norm": "l2", "eps": 0.5, "steps": 5, "restarts": 2}
