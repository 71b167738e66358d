"""Advisor scenarios: each situation of the tour maps to the expected approach, with its reason."""
import numpy as np
import pytest

from transferkit.advisor import APPROACHES, Constraints, advise, advise_data, measure
from transferkit.errors import TransferkitError

# (situation, constraints, measurements, expected top approach, rule id that must explain it, words in the reason)
SCENARIOS = [
    ("limited labels", dict(labels_per_class=20), {}, "feature-extraction", "S1", "frozen"),
    ("limited labels, features already fit", dict(), {"labels_per_class": 40, "probe_accuracy": 0.95},
     "feature-extraction", "M1", "already reaches 95%"),
    ("plenty of labels, features already fit (hymenoptera, Lite0)", dict(), {"labels_per_class": 122,
     "probe_accuracy": 0.96}, "feature-extraction", "M1", "already reaches 96%"),
    ("plenty of labels, far domain", dict(), {"labels_per_class": 600, "probe_accuracy": 0.5},
     "fine-tuning", "M2", "only 50%"),
    ("day -> night shift", dict(labels_per_class=300, has_target=True), {"proxy_a_distance": 1.6},
     "domain-adaptation", "D3", "deploy in"),
    ("robustness", dict(labels_per_class=300, robustness=True), {}, "adversarial-training", "A1", "worst-case"),
    ("new classes with 1-5 examples", dict(labels_per_class=300, new_class_shots=3), {}, "few-shot", "F1", "3 example"),
    ("unseen classes with attributes", dict(unseen_classes="attributes"), {}, "zero-shot", "Z1", "attributes"),
    ("unseen classes with descriptions", dict(unseen_classes="descriptions", labels_per_class=50), {}, "zero-shot", "Z1",
     "descriptions"),
    ("related tasks together", dict(labels_per_class=200, tasks="together"), {}, "multi-task", "T1", "share one backbone"),
    ("tasks over time", dict(labels_per_class=200, tasks="sequential"), {}, "progressive", "T2", "forgets"),
    ("mobile deployment", dict(labels_per_class=500, max_params=50_000), {"backbone_params": 2_000_000},
     "distillation", "E1", "2,000,000 parameters"),
    ("mobile latency", dict(labels_per_class=50, max_latency_ms=1.0), {"backbone_params": 10_000, "latency_ms": 8.0},
     "distillation", "E1", "8.0 ms"),
]


@pytest.mark.parametrize("situation,given,measured,expected,rule,words", SCENARIOS, ids=[s[0] for s in SCENARIOS])
def test_scenario_maps_to_expected_approach(situation, given, measured, expected, rule, words):
    advice = advise(Constraints(**given), measured)
    top = advice.top
    assert top.approach == expected, advice.to_text()
    assert rule in top.rules
    assert any(words in why for why in top.reasons), top.reasons
    assert top.score > advice.ranked[1].score  # a clear winner, not a tie broken by order
    assert set(top.strategies) | set(top.unavailable) == set(APPROACHES[expected][0])
    text = advice.to_text()
    assert expected in text and words in text


@pytest.mark.parametrize("given,expected", [
    (dict(robustness=True), "adversarial-training"), (dict(has_target=True), "domain-adaptation"),
    (dict(new_class_shots=5), "few-shot"), (dict(tasks="together"), "multi-task"), (dict(tasks="sequential"), "progressive"),
    (dict(max_params=20_000), "distillation"),
])
def test_a_requirement_outranks_every_preference_a_measurement_adds(given, expected):
    """A probe that fits (M1), 50 labels per class (S1) and the baseline (B1) give feature extraction 8 points, more
    than most requirements; the requirement still decides."""
    measured = {"labels_per_class": 50, "probe_accuracy": 0.95, "backbone_params": 200_000}
    advice = advise(Constraints(**given), measured)
    assert advice.top.approach == expected, advice.to_text()
    assert advice.approach("feature-extraction").score >= advice.top.score - 1


def test_measured_small_shift_demotes_domain_adaptation():
    near = advise(Constraints(labels_per_class=300, has_target=True), {"proxy_a_distance": 0.1})
    far = advise(Constraints(labels_per_class=300, has_target=True), {"proxy_a_distance": 1.6})
    assert near.approach("domain-adaptation").score < far.approach("domain-adaptation").score
    assert near.top.approach == "fine-tuning"
    assert "D2" in near.approach("domain-adaptation").rules
    assert any("barely differ" in r for r in near.approach("domain-adaptation").reasons)


def test_backbone_within_budget_needs_no_distillation():
    advice = advise(Constraints(labels_per_class=50, max_params=1_000_000), {"backbone_params": 100_000})
    assert advice.approach("distillation") is None
    assert any("fits the deployment budget" in f for f in advice.facts)


def test_given_labels_win_over_measured_and_facts_say_which():
    a = advise(Constraints(), {"labels_per_class": 3, "min_per_class": 3})
    assert a.top.approach == "few-shot" and any("(measured median" in f for f in a.facts)
    b = advise(Constraints(labels_per_class=60), {"labels_per_class": 3})
    assert b.top.approach == "feature-extraction" and any("(given)" in f for f in b.facts)


def test_low_compute_prefers_feature_extraction():
    a = advise(Constraints(labels_per_class=300, compute="low"))
    assert a.top.approach == "feature-extraction"
    assert "C1" in a.top.rules and "C2" in a.approach("fine-tuning").rules


def test_bench_suggestion_uses_registered_strategies():
    from transferkit.strategies import list_strategies

    advice = advise(Constraints(labels_per_class=20, has_target=True))
    picks = advice.bench_strategies()
    assert picks and set(picks) <= set(list_strategies())
    assert advice.to_dict()["ranked"][0]["approach"] == advice.top.approach


@pytest.mark.parametrize("field,value,allowed", [("tasks", "paralel", "'sequential'"), ("compute", "huge", "'low'"),
                                                 ("unseen_classes", "words", "'attributes'")])
def test_bad_constraints_name_argument_value_and_choices(field, value, allowed):
    with pytest.raises(TransferkitError) as e:
        advise(Constraints(**{field: value}))
    msg = str(e.value)
    assert repr(field) in msg and repr(value) in msg and allowed in msg


def test_negative_budget_rejected():
    with pytest.raises(TransferkitError, match="max_params"):
        advise(max_params=-5)


def test_measure_on_digits_settles_data_questions(digits, target_split):
    m = measure(digits, backbone="builtin:small-cnn", target=target_split[1], max_samples=300, latency=True)
    assert m["labels_per_class"] == pytest.approx(180.5)
    assert 0.1 < m["probe_accuracy"] <= 1.0 and 0.0 <= m["knn_accuracy"] <= 1.0
    assert np.isfinite(m["logme"]) and m["backbone_params"] > 50_000 and m["latency_ms"] > 0
    assert 0.0 <= m["proxy_a_distance"] <= 2.0


def test_advise_data_measures_few_labels(digits):
    from transferkit.data import k_per_class

    few = k_per_class(digits, 4, seed=0)
    advice = advise_data(few)  # no backbone: the profile alone settles the labels-per-class question
    assert advice.top.approach == "few-shot"
    assert any("4 labelled images per class (measured" in f for f in advice.facts)
