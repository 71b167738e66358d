"""The one tie rule: under one point, or inside the run-to-run spread, is a tie broken on cost, and said so."""
import pytest

from transferkit.engine.verdict import decide


def test_under_one_point_is_a_tie_broken_on_cost():
    v = decide({"features": 0.948, "finetune": 0.952}, cost={"features": 9.0, "finetune": 63.0})
    assert v.is_tie and v.best == "finetune" and v.winner == "features" and v.tied == ["finetune", "features"]
    assert "0.4 points apart, under the 1-point floor" in v.reason and "features wins on cost (9.0 s against 63.0 s)" in v.reason


def test_a_difference_inside_the_spread_is_a_tie_and_one_beyond_it_is_not():
    scores = {"protonet": 0.616, "simpleshot": 0.585}
    assert not decide(scores, spread={"protonet": 0.005, "simpleshot": 0.007}).is_tie
    v = decide(scores, spread={"protonet": 0.005, "simpleshot": 0.04}, cost={"protonet": 30.0, "simpleshot": 2.0})
    assert v.tied == ["protonet", "simpleshot"] and v.winner == "simpleshot"
    assert "inside the run-to-run spread (±4.0 points)" in v.reason


def test_a_clear_lead_names_the_runner_up_and_the_margin():
    v = decide({"a": 0.90, "b": 0.80, "c": 0.85}, cost={"a": 100.0, "b": 1.0, "c": 1.0})
    assert (v.winner, v.tied) == ("a", ["a"])
    assert v.reason == "a 90.0% leads c 85.0% by 5.0 points, beyond the tie margin (1.0)"


def test_without_costs_a_tie_is_named_and_the_higher_score_kept():
    v = decide({"a": 0.801, "b": 0.795, "c": 0.5})
    assert v.tied == ["a", "b"] and v.winner == "a" and "without a cost to break the tie" in v.reason
    with pytest.raises(ValueError):
        decide({})
