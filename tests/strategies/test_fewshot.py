"""Few-shot: episode sampler, CI formula, ProtoNet prototypes, the MAML inner loop, baselines on digits."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from transferkit.data import class_split, sample_episodes
from transferkit.engine import extract_features, mean_confidence_interval
from transferkit.errors import DataError, TransferkitError
from transferkit.strategies import Strategy, list_strategies
from transferkit.strategies.scarce.episodic import episodic_accuracy, prototypes
from transferkit.strategies.scarce.maml import MAML
from transferkit.strategies.scarce.probes import SupportFineTuneHead, SupportLinearProbe
from transferkit.strategies.scarce.protonet import ProtoNet
from transferkit.strategies.scarce.simpleshot import SimpleShot

TINY = dict(backbone="builtin:micro-cnn", pretrained=False, input_size=16, progress=False, seed=0)
SMALL = dict(TINY, backbone="builtin:small-cnn")  # 16 px keeps the 8x8 digits cheap
CHANCE = 0.2  # 5-way


@pytest.fixture(scope="module")
def base_novel(digits):
    return class_split(digits, ["0", "1", "2", "3", "4"])


@pytest.fixture(scope="module")
def protonet(base_novel):
    return ProtoNet(epochs=1, episodes_per_epoch=60, lr=1e-3, **SMALL).fit(base_novel[0])


def test_sampler_validates_and_is_seeded():
    labels = [0] * 30 + [1] * 30 + [2] * 4 + [3] * 30          # a plain list is accepted
    with pytest.raises(DataError) as e:
        sample_episodes(labels, n_way=4, k_shot=5, q_queries=15, episodes=10, class_names=["a", "b", "c", "d"])
    msg = str(e.value)
    assert "each class needs 20 images" in msg and "4 to 30" in msg and "fewest: c 4, a 30" in msg
    assert "Set q_queries=-1" not in msg and "k_shot + q_queries <= 4" in msg and "n_way=3" in msg  # what would work
    a = sample_episodes(labels, n_way=3, k_shot=2, q_queries=3, episodes=20, seed=1)
    b = sample_episodes(labels, n_way=3, k_shot=2, q_queries=3, episodes=20, seed=1)
    c = sample_episodes(labels, n_way=3, k_shot=2, q_queries=3, episodes=20, seed=2)
    assert all(np.array_equal(a[k], b[k]) for k in a) and not np.array_equal(a["support"], c["support"])
    assert a["support"].shape == (20, 6) and a["query"].shape == (20, 9)
    lab = np.asarray(labels)
    for e in range(20):
        assert not set(a["support"][e]) & set(a["query"][e])
        assert 2 not in lab[a["support"][e]]                     # the too-small class is never drawn
        # episode-local labels agree with the true classes
        assert np.array_equal(lab[a["support"][e]], a["classes"][e][a["support_labels"][e]])
    with pytest.raises(TransferkitError, match="'k_shot' parameter of EpisodeSampler"):
        sample_episodes(labels, k_shot=0)


def test_sampler_within_groups_draws_each_episode_from_one_group():
    # groups 'A' (classes 0-3), 'B' (4-6) and 'C' (7, 8): 3-way episodes come from A or B, never mix them, never C
    labels = np.repeat(np.arange(9), 6)
    groups = np.array(list("AAAABBBCC")).repeat(6)
    plain = sample_episodes(labels, n_way=3, k_shot=1, q_queries=2, episodes=200, seed=0)
    ep = sample_episodes(labels, n_way=3, k_shot=1, q_queries=2, episodes=200, seed=0, groups=groups)
    per_episode = [set(groups[ep["support"][e]]) | set(groups[ep["query"][e]]) for e in range(200)]
    assert all(len(g) == 1 for g in per_episode)
    drawn = [g.pop() for g in per_episode]
    assert "C" not in drawn and 60 < drawn.count("A") < 140            # groups drawn uniformly (binomial 200, 1/2)
    assert any(len(set(groups[plain["support"][e]])) > 1 for e in range(200))  # the plain draw mixes groups
    with pytest.raises(DataError, match=r"no group has 5 classes .*A 4, B 3, C 2.*n_way to at most 4"):
        sample_episodes(labels, n_way=5, k_shot=1, q_queries=2, groups=groups)
    spans = groups.copy()
    spans[0] = "B"                                                       # one image of class 0 filed under B
    with pytest.raises(DataError, match="Class 0 spans several groups"):
        sample_episodes(labels, n_way=3, k_shot=1, q_queries=2, groups=spans)


def test_evaluate_within_domain_uses_the_datasets_domains(protonet, base_novel):
    novel = base_novel[1]
    with pytest.raises(TransferkitError, match="has no domains"):
        protonet.evaluate(novel, n_way=2, k_shot=1, episodes=5, within_domain=True)
    # two domains of even and odd digits: a 2-way within-domain episode never pairs an even with an odd digit
    grouped = copy.copy(novel)
    grouped.domains = np.where(np.isin(novel.labels, [0, 2, 4]), "even", "odd")
    r = protonet.evaluate(grouped, n_way=2, k_shot=1, episodes=50, within_domain=True)
    assert r["episodes"] == 50 and 0.5 < r["accuracy"] <= 1.0


def test_confidence_interval_formula():
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(200, 8)).astype(np.float32)
    labels = np.repeat(np.arange(10), 20)
    r = episodic_accuracy(feats, labels, lambda s, sy, q, n: torch.randn(q.shape[0], q.shape[1], n),
                          n_way=5, k_shot=1, q_queries=15, episodes=600)
    assert r["episodes"] == 600 and r["q_queries"] == 15
    assert r["ci95"] == pytest.approx(1.959964 * r["std"] / np.sqrt(600), rel=1e-5)
    assert abs(r["accuracy"] - CHANCE) < 3 * r["ci95"] + 0.01          # random scores -> chance
    m, h = mean_confidence_interval([0.0, 1.0, 0.0, 1.0])
    assert m == 0.5 and h == pytest.approx(1.959964 * np.std([0, 1, 0, 1], ddof=1) / 2, rel=1e-5)


def test_protonet_prototypes_are_class_means(protonet, base_novel):
    novel = base_novel[1]
    ep = sample_episodes(novel.labels, n_way=5, k_shot=3, q_queries=2, episodes=1, seed=3)
    ds = novel.with_transform(protonet.transform(False))
    sx = torch.stack([ds[i][0] for i in ep["support"][0]])
    qx = torch.stack([ds[i][0] for i in ep["query"][0]])
    sy = torch.from_numpy(ep["support_labels"][0])
    with torch.no_grad():
        protonet.model_.eval()
        z = protonet.model_(sx)
        manual = torch.stack([z[sy == c].mean(0) for c in range(5)])
        assert torch.allclose(prototypes(z, sy, 5), manual, atol=1e-5)
        # predict_proba(support) = softmax(-squared distance to those means)
        expected = torch.softmax(-torch.cdist(protonet.model_(qx), manual) ** 2, 1).numpy()
    local = np.array(["five", "six", "seven", "eight", "nine"])
    names = local[ep["support_labels"][0]]
    proba = protonet.predict_proba(qx, support=(sx, names))
    assert proba.shape == (10, 5) and np.allclose(proba.sum(1), 1, atol=1e-5)
    order = np.argsort(local)                                         # columns follow np.unique(labels)
    assert np.allclose(proba, expected[:, order], atol=1e-4)
    pred = protonet.predict(qx, support=(sx, names))
    assert pred.dtype.kind == "U" and set(pred) <= set(names)


def test_protonet_learns_novel_classes(protonet, base_novel):
    r = protonet.evaluate(base_novel[1], n_way=5, k_shot=5, episodes=100)
    assert r["accuracy"] > CHANCE + 0.4, r
    assert protonet.history_ and "train_loss" in protonet.history_[0]


def test_protonet_save_load_and_errors(protonet, base_novel, tmp_path):
    x = base_novel[1].subset(np.arange(30))
    sup = base_novel[1].subset(np.arange(100, 140))
    p1 = protonet.predict_proba(x, support=(sup, sup.labels))
    loaded = Strategy.load(protonet.save(tmp_path / "p"))
    assert np.allclose(loaded.predict_proba(x, support=(sup, sup.labels)), p1, atol=1e-5)
    assert loaded.predict(x).shape == (30,)                          # base classes without a support set
    with pytest.raises(DataError, match="at least 2 classes"):
        protonet.predict(x, support=(sup.subset(np.arange(3)), ["a", "a", "a"]))
    with pytest.raises(TransferkitError, match="'metric' parameter of ProtoNet"):
        ProtoNet(metric="manhattan", **TINY).fit(base_novel[0])
    with pytest.raises(DataError, match=r"images per class: .* Set .*n_way="):
        protonet.evaluate(base_novel[1], n_way=6)


def test_maml_inner_loop_uses_fast_weights(base_novel, tmp_path):
    torch.manual_seed(0)
    maml = MAML(epochs=1, episodes_per_epoch=1, meta_batch=1, inner_steps=2, q_queries=5, lr=1e-2, **TINY)
    maml.fit(base_novel[0])
    loader = maml.train_loader(base_novel[0])
    sx, sy, qx, qy = next(iter(loader))
    assert sx.shape[:2] == (1, 25) and qx.shape[:2] == (1, 25)
    maml.model_.train()
    before = {n: p.detach().clone() for n, p in maml.model_.named_parameters()}
    fast = maml.adapt(sx[0], sy[0])
    changed = [n for n, p in fast.items() if not torch.allclose(p, before[n])]
    assert "head.weight" in changed and len(changed) > 2               # the inner loop moves the fast weights
    assert all(torch.equal(p, before[n]) for n, p in maml.model_.named_parameters())  # meta-params untouched
    # second order: the meta-gradient differs from the first-order one
    grads = {}
    for order in (False, True):
        maml.first_order = order
        maml.model_.zero_grad()
        maml.training_step((sx, sy, qx, qy))["loss"].backward()
        grads[order] = maml.model_.head.weight.grad.clone()
    assert not torch.allclose(grads[False], grads[True])
    # the outer step (the Trainer's optimizer) is what changes the meta-parameters
    opt = maml.configure_optimizer()
    opt.step()
    assert not torch.equal(maml.model_.head.weight, before["head.weight"])
    r = maml.evaluate(base_novel[1], episodes=3, q_queries=5)
    assert r["episodes"] == 3 and 0 <= r["accuracy"] <= 1
    proba = maml.predict_proba(base_novel[1].subset(np.arange(10)),
                               support=(base_novel[1].subset(np.arange(100, 120)), base_novel[1].labels[100:120]))
    assert proba.shape == (10, 5) and np.allclose(proba.sum(1), 1, atol=1e-5)
    loaded = Strategy.load(maml.save(tmp_path / "maml"))
    again = loaded.predict_proba(base_novel[1].subset(np.arange(10)),
                                 support=(base_novel[1].subset(np.arange(100, 120)), base_novel[1].labels[100:120]))
    assert np.allclose(again, maml.predict_proba(base_novel[1].subset(np.arange(10)), support=(
        base_novel[1].subset(np.arange(100, 120)), base_novel[1].labels[100:120])), atol=1e-5)
    with pytest.raises(TransferkitError, match="needs a support set"):
        maml.predict(base_novel[1])


@pytest.mark.parametrize("cls,kw", [(SimpleShot, {}), (SupportLinearProbe, {}), (SupportFineTuneHead, {"head_steps": 50}),
                                    (SupportFineTuneHead, {"head_steps": 50, "cosine": True})])
def test_frozen_baselines_above_chance(cls, kw, base_novel):
    s = cls(**kw, **SMALL).fit(base_novel[0])
    r = s.evaluate(base_novel[1], n_way=5, k_shot=5, episodes=40 if cls is SupportLinearProbe else 100)
    assert r["accuracy"] > CHANCE + 0.15, r   # an untrained backbone: the margin is the classifier's
    assert r["ci95"] < 0.05


def test_simpleshot_cl2n_and_roundtrip(base_novel, tmp_path):
    s = SimpleShot(**SMALL).fit(base_novel[0])
    f = s.embed(base_novel[1].subset(np.arange(20)))
    assert f.shape == (20, 128) and torch.allclose(f.norm(dim=1), torch.ones(20), atol=1e-5)
    raw = torch.from_numpy(np.array(extract_features(s.backbone_, base_novel[0], progress=False)))
    assert torch.allclose(s.base_mean_, raw.mean(0), atol=1e-5)                  # centred on the base mean   # centred on the base mean
    r1 = s.evaluate(base_novel[1], k_shot=1, episodes=50)
    r2 = Strategy.load(s.save(tmp_path / "s")).evaluate(base_novel[1], k_shot=1, episodes=50)
    assert r1["accuracy"] == pytest.approx(r2["accuracy"])
    assert {"protonet", "maml", "simpleshot", "support-linear-probe", "support-finetune-head"} <= set(
        list_strategies("scarce-data"))


def test_a_simpleshot_saved_before_the_frozen_feature_base_loads(base_novel, tmp_path):
    """Saved with pretrain_on_base and the backbone inside a classifier ('model.backbone.model.' keys, a head), an
    older SimpleShot loads with a warning about the parameters it no longer takes, and predicts as it did."""
    import json

    from safetensors.torch import load_file, save_file

    s = SimpleShot(**SMALL).fit(base_novel[0])
    d = s.save(tmp_path / "s")
    meta = json.loads((d / "strategy.json").read_text())
    meta["params"].update(pretrain_on_base=False, epochs=10, lr=1e-3)
    (d / "strategy.json").write_text(json.dumps(meta))
    old = {("model.backbone.model." + k[len("backbone."):] if k.startswith("backbone.") else k): v
           for k, v in load_file(d / "model.safetensors").items()}
    old["model.head.weight"] = torch.zeros(5, 128)
    save_file(old, d / "model.safetensors")
    with pytest.warns(UserWarning, match=r"\['epochs', 'lr', 'pretrain_on_base'\]"):
        again = Strategy.load(d)
    query = base_novel[1].subset(np.arange(20))
    support = (base_novel[1].subset(np.arange(20, 60)), base_novel[1].labels[20:60])
    np.testing.assert_allclose(again.predict_proba(query, support), s.predict_proba(query, support), atol=1e-6)
