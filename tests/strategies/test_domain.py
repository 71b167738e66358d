"""Domain adaptation: gradient reversal, alignment losses, validators, diagnostics, class checks, and every
method beating source-only on the built-in 'night' shift of digits (seeded)."""
import numpy as np
import pytest
import torch

from transferkit.data import split_domains, stratified_split
from transferkit.data.shifts import domain_pair
from transferkit.errors import DataError, TransferkitError
from transferkit.strategies import Strategy, create_strategy, list_strategies
from transferkit.engine import proxy_a_distance
from transferkit.strategies.domain.losses import coral_loss, ganin_lambda, grad_reverse, mk_mmd
from transferkit.strategies.domain.validators import embedding_map, im_score, snd_score

COMMON = dict(backbone="builtin:small-cnn", epochs=5, batch_size=32, lr=3e-3, input_size=16, progress=False,
              seed=0, diagnostics=False, selection="last")
METHODS = ["dann", "mmd", "coral", "cdan"]


@pytest.fixture(scope="module")
def night(digits):
    """(source half of digits, unlabelled night target, labelled night target test)."""
    source, target = domain_pair(digits, "night", seed=0)
    tgt_train, tgt_test = stratified_split(target, 0.4, seed=0)
    return source, tgt_train.unlabelled(), tgt_test


@pytest.fixture(scope="module")
def source_only(night):
    source, target, test = night
    return create_strategy("source-only", **COMMON).fit(source, target=target, target_test=test)


def test_gradient_reversal_flips_and_scales_the_gradient():
    x = torch.randn(4, 3, requires_grad=True)
    w = torch.randn(4, 3)
    (grad_reverse(x, 0.5) * w).sum().backward()
    torch.testing.assert_close(x.grad, -0.5 * w)
    y = torch.randn(4, 3, requires_grad=True)
    assert torch.equal(grad_reverse(y, 0.3), y)  # identity forward
    assert ganin_lambda(0.0) == 0.0 and abs(ganin_lambda(1.0) - 0.9999) < 1e-3
    assert ganin_lambda(0.1) < ganin_lambda(0.3) < ganin_lambda(0.6)


def test_alignment_losses_are_zero_for_equal_domains_and_grow_with_shift():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(64, 8, generator=g), torch.randn(64, 8, generator=g)
    assert float(mk_mmd(a, a)) < 1e-6 and float(coral_loss(a, a)) < 1e-9
    assert float(mk_mmd(a, b + 2.0)) > 10 * float(mk_mmd(a, b))
    assert float(coral_loss(a, 3 * b)) > 10 * float(coral_loss(a, b))


def test_unsupervised_validators_prefer_confident_diverse_predictions():
    rng = np.random.default_rng(0)
    uniform = np.full((100, 5), 0.2)
    confident = np.eye(5)[rng.integers(0, 5, 100)] * 0.9 + 0.02
    collapsed = np.tile(np.eye(5)[0] * 0.9 + 0.02, (100, 1))
    assert im_score(confident) > im_score(collapsed) and im_score(confident) > im_score(uniform)
    scattered = rng.dirichlet(np.full(5, 0.5), 100)  # no cluster structure
    assert im_score(confident) > im_score(scattered)
    # SND: dense class clusters give each sample many equally close neighbours -> higher neighbourhood entropy
    assert snd_score(confident) > snd_score(scattered) + 0.2


def test_proxy_a_distance_and_embedding_map():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(300, 6)), rng.normal(size=(300, 6))
    assert proxy_a_distance(a, b) < 0.4
    assert proxy_a_distance(a, b + 3) > 1.8
    m = embedding_map(a[:60], b[:40], max_points=50)
    assert len(m["coords"]) == 90 and m["domain"].count("target") == 40 and len(m["coords"][0]) == 2


@pytest.mark.parametrize("method", METHODS)
def test_each_method_beats_source_only_on_night_digits(method, night, source_only):
    source, target, test = night
    base = source_only.evaluate(test)["accuracy"]
    da = create_strategy(method, **COMMON).fit(source, target=target, target_test=test)
    acc = da.evaluate(test)["accuracy"]
    assert acc > base + 0.1, (method, acc, base)
    h = da.history_[-1]
    assert {"train_transfer_loss", "target_im", "target_snd", "target_entropy", "oracle_target_accuracy"} <= set(h)
    assert abs(h["oracle_target_accuracy"] - acc) < 1e-6  # selection='last': the kept model is the last epoch


def test_unsupervised_selection_restores_the_chosen_epoch_and_reports(night, tmp_path):
    source, target, test = night
    params = {**COMMON, "epochs": 3, "selection": "im", "diagnostics": True}
    da = create_strategy("dann", **params).fit(source, target=target, target_test=test)
    rep = da.selection_report()
    ims = [h["target_im"] for h in da.history_]
    assert rep["selected_epoch"] == int(np.argmax(ims)) and rep["validator"] == "im"
    kept = da.history_[rep["selected_epoch"]]["oracle_target_accuracy"]
    assert abs(da.evaluate(test)["accuracy"] - kept) < 1e-6  # the selected checkpoint is the model in use
    assert set(da.shift_) == {"proxy_a_distance_before", "proxy_a_distance_after"}
    res = da.domain_report(source, target, target_test=test, max_points=40)
    assert "oracle_target_accuracy" in res["metrics"] and "oracle" in res["extra"]["note"]
    assert len(res["extra"]["embedding_map"]["coords"]) == 80
    loaded = Strategy.load(da.save(tmp_path / "dann"))
    np.testing.assert_allclose(loaded.predict_proba(test), da.predict_proba(test), atol=1e-5)


def test_class_lists_must_match_and_target_is_required(night):
    source, target, _ = night
    other = target.subset(np.arange(len(target)), classes=[*source.classes[:-1], "ten"])
    with pytest.raises(DataError, match=r"only in the source \(digits\): \['9'\], only in the target \(digits-night\): \['ten'\]"):
        create_strategy("coral", **COMMON).fit(source, target=other)
    with pytest.raises(TransferkitError, match="needs the 'target' role"):
        create_strategy("coral", **COMMON).fit(source)
    with pytest.raises(TransferkitError, match="'selection' parameter of DANN must be one of"):
        create_strategy("dann", **{**COMMON, "selection": "oracle"}).fit(source, target=target)


def test_split_domains_and_registry(digits):
    src, tgt = domain_pair(digits, "inversion", seed=0)
    both = src.subset(np.arange(len(src)))
    both.images = np.concatenate([src.images, tgt.images])
    both.labels = np.concatenate([src.labels, tgt.labels])
    both.domains = np.concatenate([src.domains, tgt.domains])
    s, t = split_domains(both, "source", "inversion")
    assert len(s) == len(src) and len(t) == len(tgt)
    with pytest.raises(TransferkitError, match="'target' parameter of split_domains must be one of"):
        split_domains(both, "source", "night")
    assert {"source-only", "dann", "mmd", "coral", "cdan"} <= set(list_strategies("domain-shift"))
