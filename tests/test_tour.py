"""The tour in quick mode on digits (what `make tour-quick` runs): every situation settled, reported."""
import json
import re

import pytest

from transferkit.tour import SITUATIONS, run_tour

EXPECTED_ADVICE = {
    "limited-labels": "feature-extraction", "domain-shift": "domain-adaptation", "robustness": "adversarial-training",
    "few-shot": "few-shot", "zero-shot": "zero-shot", "multi-task": "multi-task", "continual": "progressive",
    "deployment": "distillation",
}


@pytest.fixture(scope="module")
def tour(tmp_path_factory):
    out = tmp_path_factory.mktemp("tour")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TRANSFERKIT_CACHE", str(out / "cache"))
        summary = run_tour("digits", quick=True, out=out / "run", progress=False)
    return out / "run", summary


def test_every_situation_has_a_measured_winner_and_a_reason(tour):
    out, summary = tour
    rows = {r["situation"]: r for r in summary["situations"]}
    assert list(rows) == list(SITUATIONS)
    for name, r in rows.items():
        assert r["winner"] in r["scores"] and r["reason"]
        assert all(0.0 <= v <= 1.0 for v in r["scores"].values()), (name, r["scores"])
        assert r["advisor"].startswith(EXPECTED_ADVICE[name]), (name, r["advisor"])
    assert json.loads((out / "tour.json").read_text())["situations"] == summary["situations"]


def test_the_measurements_show_what_transfer_learning_claims(tour):
    rows = {r["situation"]: r for r in tour[1]["situations"]}
    lim = rows["limited-labels"]["scores"]
    assert max(v for k, v in lim.items() if k != "finetune from scratch") > lim["finetune from scratch"] + 0.05
    rob = rows["robustness"]["scores"]
    assert rob["adversarial finetune (PGD)"] > rob["finetune"] + 0.2
    few = json.loads((tour[0] / "few-shot" / "simpleshot" / "result.json").read_text())["metrics"]
    assert rows["few-shot"]["scores"]["simpleshot"] == pytest.approx(few["accuracy"], abs=1e-6)
    assert few["accuracy"] > 2 * few["chance"]  # chance: 1 / ways
    pnn = json.loads((tour[0] / "continual" / "progressive" / "result.json").read_text())["metrics"]
    assert pnn["forgetting"] == 0.0 and pnn["bwt"] == 0.0  # earlier columns are frozen: zero forgetting


def test_results_and_report_are_written(tour):
    out, summary = tour
    assert len(list(out.rglob("result.json"))) >= 8 * 2
    html = (out / "report.html").read_text()
    # no external resource (a fallback's text may name where to download the data, as plain text)
    assert not re.search(r"""(src|href)\s*=\s*['"]?(https?:)?//""", html)
    assert re.findall(r"<section id='([^']*)'>", html) == list(SITUATIONS)  # one section per situation
    assert (out / "tour.md").read_text().count("| **") == len(SITUATIONS)


def test_every_field_the_report_reads_is_written_by_some_run(tour):
    from transferkit.engine.results import RESULT_FIELDS

    def paths(d, prefix=""):
        for k, v in d.items():
            yield prefix + k
            if isinstance(v, dict) and not prefix:
                yield from paths(v, k + ".")

    written = {p for f in tour[0].rglob("result.json") for p in paths(json.loads(f.read_text()))}
    assert set(RESULT_FIELDS) <= written, sorted(set(RESULT_FIELDS) - written)


def test_without_the_real_data_each_real_situation_falls_back_and_says_so(tmp_path, monkeypatch):
    """A data root without the photos, USPS or Omniglot: the situations that use them run on the built-in data
    and name what is missing, in the summary and in the report."""
    monkeypatch.setenv("TRANSFERKIT_DATA", str(tmp_path / "no-data"))
    monkeypatch.setenv("TRANSFERKIT_CACHE", str(tmp_path / "cache"))
    real = ["limited-labels", "domain-shift", "few-shot"]
    summary = run_tour("digits", quick=True, out=tmp_path / "run", situations=real, progress=False)
    rows = {r["situation"]: r for r in summary["situations"]}
    assert list(rows) == real
    for name, r in rows.items():
        assert "fallback:" in r["data"] and "not available" in r["data"], (name, r["data"])
        assert r["winner"] in r["scores"]
    html = (tmp_path / "run" / "report.html").read_text()
    assert html.count("fallback:") >= len(real)
