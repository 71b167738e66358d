"""The strategy contract, checked over every registered strategy (timm's registry-wide tests, scikit-learn's
``check_estimator``): parameters round-trip through ``clone``/``get_params``/``set_params``, a misspelt name is
answered with the valid ones, ``family`` is one of the five, ``fit`` returns self and adds only public state
ending in ``_``, ``save``/``load`` keeps ``predict_proba`` identical, ``evaluate`` reports accuracy, and
``augment='auto'`` resolves the same way for every strategy that trains on images.

Known failures are ``xfail(strict=True)`` with the stage of the strategies redesign that fixes them: their count
is the debt meter, and a fix that makes one pass turns the strict xfail red until the mark goes.
A new strategy needs nothing here unless its fit needs a setting to stay tiny (``TINY``).
"""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

from transferkit.data import from_arrays, resolve_augment
from transferkit.errors import TransferkitError
from transferkit.strategies import create_strategy, list_strategies
from transferkit.strategies.base import FAMILIES, FAMILY_PACKAGES, MissingRoleError

STRATEGIES = sorted(list_strategies())
# Optional parts a contract fit cannot have offline, as timm excludes models from its registry-wide tests.
EXCLUDED_FROM_FIT = {"clip-zeroshot": "needs open_clip weights (a hub download); tests/strategies/test_zeroshot.py "
                                      "checks it on a tiny model it builds itself"}
# Per-strategy settings that keep one fit tiny; everything else is the default.
TINY = {"adversarial-finetune": {"steps": 1}, "protonet": {"n_way": 3, "k_shot": 2, "q_queries": 2},
        "maml": {"n_way": 3, "k_shot": 2, "q_queries": 2}}
# Episodic strategies evaluate on episodes; the tiny evaluation set has 8 images per class.
EPISODES = dict(n_way=3, k_shot=2, q_queries=2)
EVALUATE = {n: EPISODES for n in ("protonet", "maml", "simpleshot", "support-linear-probe", "support-finetune-head")}
# Strategies whose predictions need a support set (few-shot adaptation): 2 labelled images of 3 classes.
NEEDS_SUPPORT = {"maml"}
# Known failures: (strategy, check) -> the issue stage that fixes it. None today; a new one goes here, not in a skip.
DEBT: dict[tuple[str, str], str] = {}
FAST = dict(backbone="builtin:micro-cnn", pretrained=False, seed=0, progress=False)


def _debt(name, check):
    reason = DEBT.get((name, check))
    return [pytest.mark.xfail(strict=True, reason=reason)] if reason else []


def _cases(check, names=STRATEGIES):
    return [pytest.param(n, marks=_debt(n, check)) for n in names]


# -- without fitting ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", _cases("params"))
def test_clone_and_the_params_round_trip(name):
    s = create_strategy(name)
    params = s.get_params(deep=False)
    c = clone(s)
    assert c is not s and type(c) is type(s)
    assert {k: repr(v) for k, v in c.get_params(deep=False).items()} == {k: repr(v) for k, v in params.items()}
    key = sorted(params)[0]
    assert c.set_params(**{key: params[key]}) is c
    assert repr(create_strategy(name, **params).get_params(deep=False)) == repr(params)


@pytest.mark.parametrize("name", _cases("misspelt"))
def test_a_misspelt_parameter_names_the_valid_ones(name):
    real = sorted(create_strategy(name).get_params(deep=False))[0]
    with pytest.raises(TransferkitError, match=f"Unknown parameter '{real}x' for strategy '{name}'.* Valid: .*{real}"):
        create_strategy(name, **{real + "x": 1})


@pytest.mark.parametrize("name", _cases("family"))
def test_family_is_one_of_the_five(name):
    cls = list_strategies()[name]
    assert cls.family in FAMILIES, f"{name}: family {cls.family!r}"
    assert (cls.__doc__ or "").strip(), f"{name} has no docstring"


@pytest.mark.parametrize("name", _cases("package"))
def test_a_strategy_lives_in_its_familys_package(name):
    """``strategies/<package>/<method>.py``: a newcomer finds a strategy under its family's package."""
    cls = list_strategies()[name]
    parts = cls.__module__.split(".")
    assert parts[:2] == ["transferkit", "strategies"] and len(parts) == 4, cls.__module__
    assert parts[2] == FAMILY_PACKAGES[cls.family], f"{name}: family {cls.family!r} in package {parts[2]!r}"


def test_the_strategies_package_is_the_bases_and_the_five_families():
    """No module besides the bases and the registry sits beside the family packages (the old flat paths are gone)."""
    import transferkit.strategies as pkg
    from pathlib import Path

    root = Path(pkg.__file__).parent
    assert {p.stem for p in root.glob("*.py")} == {"__init__", "base", "frozen", "registry"}
    assert {p.name for p in root.iterdir() if (p / "__init__.py").exists()} == set(FAMILY_PACKAGES.values())


# Frozen-feature strategies never take a gradient step on the backbone (issue 27 stage G): no training knobs.
FROZEN_FEATURE = ("features", "dap", "eszsl", "simpleshot", "support-linear-probe", "support-finetune-head")
TRAINING_KNOBS = {"epochs", "lr", "scheduler", "grad_clip", "augment", "optimizer", "weight_decay", "warmup_epochs"}


@pytest.mark.parametrize("name", _cases("knobs", FROZEN_FEATURE))
def test_a_frozen_feature_strategy_takes_no_training_knobs(name):
    knobs = TRAINING_KNOBS & set(create_strategy(name).get_params(deep=False))
    assert not knobs, f"{name} never trains its backbone, yet takes {sorted(knobs)}"


@pytest.mark.parametrize("name", _cases("constraints"))
def test_every_parameter_is_declared_once_and_checked(name):
    """scikit-learn's ``_parameter_constraints``: one spec per class names every parameter, the defaults satisfy it,
    and a value no constraint allows is refused by ``validate`` naming that parameter, for each parameter in turn."""
    cls = list_strategies()[name]
    s = create_strategy(name)
    assert sorted(cls.parameter_constraints()) == sorted(s.get_params(deep=False)) == cls.param_names()
    assert s.validate() is s
    for param in cls.param_names():
        with pytest.raises(TransferkitError, match=rf"The '{param}' parameter of {cls.__name__} must be "):
            clone(s).set_params(**{param: object()}).validate()
    rows = cls.describe_params()
    assert [r["name"] for r in rows] == cls.param_names() and all(r["accepts"] for r in rows)


@pytest.mark.parametrize("name", _cases("fit_roles"))
def test_fit_roles_names_each_missing_role(name):
    cls = list_strategies()[name]
    extra = [r for r in cls.data_roles if r not in ("train", "val")]
    assert cls.fit_roles({r: f"<{r}>" for r in cls.data_roles}) == {r: f"<{r}>" for r in extra}
    if extra:
        with pytest.raises(MissingRoleError, match=f"{name!r} needs data role.*{extra}") as e:
            cls.fit_roles({"train": "<train>"})
        assert e.value.missing == extra


# -- fitted on tiny colour images ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def colour(digits):
    """Digits 0-4 as colour images (each plane a different function of the ink, so the data counts as colour
    photographs and augment='auto' must choose 'flip'): 12 per class to fit, 8 per class to evaluate."""
    from transferkit.data import class_split, stratified_split

    five = class_split(digits, ["0", "1", "2", "3", "4"])[0]
    idx = np.concatenate([np.flatnonzero(five.labels == c)[:20] for c in range(5)])
    grey = np.stack([np.asarray(five.load_image(int(i), 1), np.float32) for i in idx])
    grey = (255 * grey / max(1.0, grey.max())).astype(np.uint8)
    rgb = np.stack([grey, grey // 2, 255 - grey], axis=-1)
    data = from_arrays(rgb, five.labels[idx], list(five.classes), name="colour-digits")
    assert data.is_colour()
    return stratified_split(data, 0.4, seed=0)


def _roles(name, train, test):
    cls = list_strategies()[name]
    roles = {"train": train}
    if "target" in cls.data_roles:
        roles["target"] = test.unlabelled()
    if "teacher" in cls.data_roles:
        roles["teacher"] = create_strategy("finetune", epochs=1, batch_size=16, **FAST).fit(train)
    if "semantics" in cls.data_roles:
        rng = np.random.default_rng(0)
        roles["semantics"] = {"classes": list(train.classes), "attributes": rng.random((len(train.classes), 6)) > 0.5}
    if "tasks" in cls.data_roles:
        from transferkit.data import task_sequence

        roles = {"tasks": task_sequence(train, 2, classes_per_task=2)}
        test = task_sequence(test, 2, classes_per_task=2)[-1]
    return roles, test


@pytest.fixture(scope="module")
def fitted(colour):
    """name -> (the strategy before fit, fit's return value, public attributes before fit, evaluation data)."""
    cache = {}

    def get(name):
        if name not in cache:
            train, test = colour
            params = {k: v for k, v in dict(FAST, epochs=1, batch_size=16, **TINY.get(name, {})).items()
                      if k in create_strategy(name).get_params(deep=False)}
            s = create_strategy(name, **params)
            before = {k for k in vars(s) if not k.startswith("_")}
            roles, test = _roles(name, train, test)
            train_data = roles.pop("train", None)
            out = s.fit(train_data, **roles) if train_data is not None else s.fit(**roles)
            cache[name] = (s, out, before, test)
        return cache[name]

    return get


FITTABLE = [n for n in STRATEGIES if n not in EXCLUDED_FROM_FIT]


@pytest.mark.parametrize("name", _cases("fit", FITTABLE))
def test_fit_returns_self_and_adds_only_trailing_underscore_state(name, fitted):
    s, out, before, _ = fitted(name)
    assert out is s
    added = {k for k in vars(s) if not k.startswith("_")} - before
    assert added and all(k.endswith("_") for k in added), sorted(k for k in added if not k.endswith("_"))


@pytest.mark.parametrize("name", _cases("evaluate", FITTABLE))
def test_evaluate_reports_accuracy_and_save_load_keeps_predict_proba(name, fitted, tmp_path):
    from transferkit.strategies import Strategy

    s, _, _, test = fitted(name)
    metrics = s.evaluate(test, **EVALUATE.get(name, {}))
    assert 0.0 <= metrics["accuracy"] <= 1.0
    again = Strategy.load(s.save(tmp_path / name))
    assert type(again) is type(s)
    kw = {}
    if name in NEEDS_SUPPORT:
        idx = np.concatenate([np.flatnonzero(test.labels == c)[:2] for c in range(3)])
        kw["support"] = (test.subset(idx), test.labels[idx])
    np.testing.assert_array_equal(again.predict_proba(test, **kw), s.predict_proba(test, **kw))


@pytest.mark.parametrize("name", _cases("augment", FITTABLE))
def test_augment_auto_resolves_alike_for_every_strategy_that_trains_on_images(name, fitted, colour):
    s, _, _, _ = fitted(name)
    if "augment" not in s.get_params(deep=False) or not getattr(s, "history_", None):
        pytest.skip(f"{name} trains no network on images")
    assert getattr(s, "augment_", None) == resolve_augment("auto", colour[0]) == "flip"
